# Reference numbers for the MAR MMRM of the antidepressant trial data (rbmi's example data set), written to
# tests/validation/data/antidepressant_mmrm_reference.json.
#
# Run from the repository root:  Rscript tests/validation/r/antidepressant_mmrm.R [out.json]
# Needs nlme, emmeans, numDeriv, jsonlite (Debian: r-cran-nlme, r-cran-emmeans, r-cran-numderiv,
# r-cran-jsonlite).
#
# Data: data/examples/antidepressant/antidepressant.csv (608 observed rows of 172 patients, visits 4..7;
# see the README.md beside it). Rows with a missing outcome are absent from the data set, so every row is
# used: the MMRM is the likelihood-based analysis under MAR on the observed rows, as in the imputation
# model of rbmi's vignettes (Gower-Page et al. 2022) and the PROC MIXED run of its SAS comparison.
#
# Models (VISIT a factor with levels 4, 5, 6, 7; THERAPY a factor with PLACEBO as reference level),
# unstructured covariance, REML:
#   separate baseline slopes:  y ~ BASVAL * VISIT + THERAPY * VISIT
#   common baseline slope:     y ~ BASVAL + THERAPY * VISIT
# for y = CHANGE and y = HAMDTL17 (= CHANGE + BASVAL: with BASVAL a covariate the two responses give the
# same treatment contrasts, covariance and REML log-likelihood; only the LS means shift by mean(BASVAL)).
# Fitted with nlme::gls(correlation = corSymm(form = ~ as.integer(VISIT) | PATIENT),
# weights = varIdent(form = ~ 1 | VISIT), method = "REML"), then refined to the exact REML maximum by
# Newton steps in theta = vech(Sigma) (lower triangle, row-major: (1,1), (2,1), (2,2), (3,1), ...) with
# the analytic REML score (Jennrich & Schluchter 1986) per patient and the numDeriv Jacobian of that
# score as the Hessian. gls stops short of the maximum; both its numbers ("gls") and the refined ones
# (the pinned values) are written, with the score norm and log-likelihood gap of each.
#
# Pinned per model: the DRUG - PLACEBO contrast at each visit (estimate, model-based SE), the LS means
# per arm and visit (emmeans' reference grid: BASVAL at its mean over the analysed rows), the fixed
# effects, the REML log-likelihood, the 4 x 4 covariance matrix, patients and observations used.
# nlme's gls gives no Satterthwaite or Kenward-Roger df: none are pinned here.
#
# Also written: facts about the data (rows, patients and sums per visit and arm, missing-data pattern)
# for tests/validation/test_antidepressant_data.py, and, as an external cross-check, the SAS PROC MIXED
# results (DDFM=KR) shipped with rbmi; the script stops if R disagrees with SAS at SAS's printed digits.

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(numDeriv)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[1] else "tests/validation/data/antidepressant_mmrm_reference.json"
csv_path <- "data/examples/antidepressant/antidepressant.csv"
VISITS <- c("4", "5", "6", "7")
ARMS <- c("PLACEBO", "DRUG")

d <- read.csv(csv_path, colClasses = c(PATIENT = "character", VISIT = "character", THERAPY = "character",
                                       GENDER = "character", POOLINV = "character"))
stopifnot(nrow(d) == 608, length(unique(d$PATIENT)) == 172, all(d$VISIT %in% VISITS),
          all(d$THERAPY %in% ARMS), all(d$CHANGE == d$HAMDTL17 - d$BASVAL))
d$VISIT <- factor(d$VISIT, levels = VISITS)
d$THERAPY <- factor(d$THERAPY, levels = ARMS)
d <- d[order(as.integer(d$PATIENT), as.integer(d$VISIT)), ]
rownames(d) <- NULL

# ---- facts about the data ----------------------------------------------------------------------------
per_visit_arm <- function(f) {
  setNames(lapply(VISITS, function(v) setNames(lapply(ARMS, function(a) f(d[d$VISIT == v & d$THERAPY == a, ])),
                                                ARMS)), VISITS)
}
patients <- d[!duplicated(d$PATIENT), c("PATIENT", "THERAPY")]
visits_of <- split(as.integer(as.character(d$VISIT)), d$PATIENT)
pattern_of <- vapply(visits_of, function(v) paste(ifelse(4:7 %in% v, "O", "."), collapse = ""), "")
last_of <- vapply(visits_of, max, 0)
arm_of <- setNames(as.character(patients$THERAPY), patients$PATIENT)
monotone <- vapply(visits_of, function(v) identical(sort(v), 4L:max(v)), TRUE)
count_by_arm <- function(values) {
  setNames(lapply(ARMS, function(a) {
    tab <- table(values[arm_of[names(values)] == a])
    setNames(as.list(as.integer(tab)), names(tab))
  }), ARMS)
}
facts <- list(
  file = csv_path,
  md5 = unname(tools::md5sum(csv_path)),
  n_rows = nrow(d),
  n_patients = nrow(patients),
  patients_per_arm = as.list(table(patients$THERAPY)[ARMS]),
  rows_per_visit_arm = per_visit_arm(nrow),
  sum_change = per_visit_arm(function(x) sum(x$CHANGE)),
  sum_basval = per_visit_arm(function(x) sum(x$BASVAL)),
  sum_hamdtl17 = per_visit_arm(function(x) sum(x$HAMDTL17)),
  sum_basval_patients = sum(d$BASVAL[!duplicated(d$PATIENT)]),
  last_visit_per_arm = count_by_arm(last_of),
  pattern_per_arm = count_by_arm(pattern_of),
  non_monotone_patients = I(names(which(!monotone))),
  missing_per_column = as.list(vapply(d, function(x) sum(is.na(x)), 0L)),
  note = paste("pattern: O observed, . missing at visits 4, 5, 6, 7; a patient is monotone if observed at",
               "every visit from 4 up to his last one. Rows with a missing outcome are absent from the file.")
)

# ---- REML in theta = vech(Sigma), per patient --------------------------------------------------------
T <- length(VISITS)
pairs <- do.call(rbind, lapply(1:T, function(u) cbind(u, 1:u)))
sigma_of <- function(theta) {
  S <- matrix(0, T, T); S[pairs] <- theta; S[pairs[, 2:1, drop = FALSE]] <- theta; S
}
E_of <- lapply(seq_len(nrow(pairs)), function(h) {
  E <- matrix(0, T, T); E[pairs[h, 1], pairs[h, 2]] <- 1; E[pairs[h, 2], pairs[h, 1]] <- 1; E
})

make_reml <- function(X, y, id, visit) {
  groups <- split(seq_along(y), id)
  N <- length(y); p <- ncol(X)
  stats_at <- function(theta) {
    S <- sigma_of(theta)
    xwx <- matrix(0, p, p); xwy <- numeric(p); ywy <- 0; logdet <- 0; W <- list()
    for (k in seq_along(groups)) {
      g <- groups[[k]]
      C <- chol(S[visit[g], visit[g], drop = FALSE])
      W[[k]] <- chol2inv(C)
      Xi <- X[g, , drop = FALSE]
      logdet <- logdet + 2 * sum(log(diag(C)))
      xwx <- xwx + crossprod(Xi, W[[k]] %*% Xi)
      xwy <- xwy + crossprod(Xi, W[[k]] %*% y[g])
      ywy <- ywy + sum(y[g] * (W[[k]] %*% y[g]))
    }
    beta <- drop(solve(xwx, xwy))
    list(W = W, xwx = xwx, beta = beta, logdet = logdet, quad = ywy - sum(xwy * beta))
  }
  loglik <- function(theta) {
    s <- stats_at(theta)
    -0.5 * ((N - p) * log(2 * pi) + s$logdet + as.numeric(determinant(s$xwx)$modulus) + s$quad)
  }
  # dl/dtheta_h = -tr(P G_h)/2 + y'P G_h P y/2, with P y = W_i (y_i - X_i beta) per patient and
  # tr(P G_h) = sum_i tr(W_i E_hi) - tr(A^-1 sum_i X_i' W_i E_hi W_i X_i), A = X'WX
  score <- function(theta) {
    s <- stats_at(theta)
    Ainv <- solve(s$xwx)
    vapply(seq_len(nrow(pairs)), function(h) {
      tr1 <- 0; M <- matrix(0, p, p); q <- 0
      for (k in seq_along(groups)) {
        g <- groups[[k]]
        Eh <- E_of[[h]][visit[g], visit[g], drop = FALSE]
        Wi <- s$W[[k]]; Xi <- X[g, , drop = FALSE]
        r <- Wi %*% (y[g] - Xi %*% s$beta)
        tr1 <- tr1 + sum(Wi * Eh)
        WX <- Wi %*% Xi
        M <- M + crossprod(WX, Eh %*% WX)
        q <- q + sum(r * (Eh %*% r))
      }
      -0.5 * (tr1 - sum(Ainv * M)) + 0.5 * q
    }, 0)
  }
  list(loglik = loglik, score = score, stats_at = stats_at)
}

# contrasts and LS means as L beta: emmeans' reference grid (arm x visit, BASVAL at its mean over the
# analysed rows); C: DRUG - PLACEBO at each visit
grid_matrices <- function(fml, response) {
  grid <- expand.grid(VISIT = factor(VISITS, levels = VISITS), THERAPY = factor(ARMS, levels = ARMS))
  grid$BASVAL <- mean(d$BASVAL)
  grid[[response]] <- 0
  L <- model.matrix(fml, grid)
  key <- paste(grid$THERAPY, grid$VISIT)
  C <- t(sapply(VISITS, function(v) L[key == paste("DRUG", v), ] - L[key == paste("PLACEBO", v), ]))
  list(L = L, C = C, key = key)
}

# ---- one model ---------------------------------------------------------------------------------------
fit_one <- function(response, rhs, label) {
  fml <- as.formula(paste(response, "~", rhs))
  fit <- gls(fml, data = d, method = "REML",
             correlation = corSymm(form = ~ as.integer(VISIT) | PATIENT),
             weights = varIdent(form = ~ 1 | VISIT),
             control = glsControl(tolerance = 1e-10, msTol = 1e-10, msMaxIter = 500, maxIter = 500))
  X <- model.matrix(fml, d)
  y <- d[[response]]
  visit <- as.integer(d$VISIT)
  reml <- make_reml(X, y, d$PATIENT, visit)
  complete_patient <- names(which(table(d$PATIENT) == T))[1]
  S_gls <- unclass(getVarCov(fit, individual = complete_patient))
  theta_gls <- S_gls[pairs]
  stopifnot(max(abs(reml$stats_at(theta_gls)$beta - coef(fit))) < 1e-8 * max(abs(coef(fit))))
  ll_gap_nlme <- as.numeric(logLik(fit)) - reml$loglik(theta_gls)
  stopifnot(abs(ll_gap_nlme) < 1e-8)   # nlme's REML log-likelihood is the one written out here

  # Newton to the exact maximum
  theta <- theta_gls
  for (it in 1:50) {
    g <- reml$score(theta)
    H <- jacobian(reml$score, theta)
    H <- (H + t(H)) / 2
    step <- -solve(H, g)
    theta <- theta + step
    scale <- sqrt(diag(sigma_of(theta))[pairs[, 1]] * diag(sigma_of(theta))[pairs[, 2]])
    if (max(abs(step) / scale) < 1e-13) break
  }
  score_gls <- reml$score(theta_gls)
  score_opt <- reml$score(theta)
  info <- -jacobian(reml$score, theta); info <- (info + t(info)) / 2
  stopifnot(all(eigen(info, symmetric = TRUE, only.values = TRUE)$values > 0))   # a maximum
  s_opt <- reml$stats_at(theta)
  beta <- setNames(s_opt$beta, colnames(X)); V <- solve(s_opt$xwx)
  stopifnot(max(abs(V - vcov(fit))) < 1e-3 * max(abs(V)))

  gm <- grid_matrices(fml, response)
  L <- gm$L; C <- gm$C; key <- gm$key
  lsm_at <- function(b, Vb) list(est = drop(L %*% b), se = sqrt(rowSums((L %*% Vb) * L)))
  con_at <- function(b, Vb) list(est = drop(C %*% b), se = sqrt(rowSums((C %*% Vb) * C)))

  # emmeans on the gls fit reproduces the L-beta numbers at gls's estimate
  emm <- emmeans(fit, ~ THERAPY | VISIT, mode = "df.error")
  es <- as.data.frame(summary(emm))
  cs <- as.data.frame(summary(contrast(emm, method = list("DRUG - PLACEBO" = c(-1, 1)))))
  lg <- lsm_at(coef(fit), vcov(fit)); cg <- con_at(coef(fit), vcov(fit))
  es_key <- paste(es$THERAPY, es$VISIT)
  stopifnot(max(abs(es$emmean - lg$est[match(es_key, key)])) < 1e-10,
            max(abs(es$SE - lg$se[match(es_key, key)])) < 1e-10,
            max(abs(cs$estimate - cg$est[match(as.character(cs$VISIT), VISITS)])) < 1e-10,
            max(abs(cs$SE - cg$se[match(as.character(cs$VISIT), VISITS)])) < 1e-10)

  pack <- function(b, Vb, S, ll) {
    lo <- lsm_at(b, Vb); co <- con_at(b, Vb)
    list(
      contrast_drug_minus_placebo = setNames(lapply(seq_along(VISITS), function(k)
        list(estimate = co$est[k], se = co$se[k])), VISITS),
      lsmeans = setNames(lapply(VISITS, function(v) setNames(lapply(ARMS, function(a) {
        k <- which(key == paste(a, v)); list(estimate = lo$est[k], se = lo$se[k])
      }), ARMS)), VISITS),
      reml_loglik = ll,
      covariance = lapply(seq_len(T), function(r) S[r, ])
    )
  }
  S_opt <- sigma_of(theta)
  rel <- function(a, b) max(abs(a - b) / pmax(abs(b), 1e-12))
  co_g <- con_at(coef(fit), vcov(fit)); co_o <- con_at(beta, V)
  out <- pack(beta, V, S_opt, reml$loglik(theta))
  out <- c(list(response = response, formula = deparse(fml), n_patients = length(unique(d$PATIENT)),
                n_observations = nrow(d), basval_mean_rows = mean(d$BASVAL)),
           out,
           list(fixed_effects = as.list(beta), fixed_effects_se = as.list(sqrt(diag(V))),
                gls = c(pack(coef(fit), vcov(fit), S_gls, as.numeric(logLik(fit))),
                        list(fixed_effects = as.list(coef(fit)))),
                convergence = list(
                  newton_steps = it,
                  max_abs_score_at_gls = max(abs(score_gls)),
                  max_abs_score_at_pinned = max(abs(score_opt)),
                  reml_loglik_gap_gls_below_maximum = reml$loglik(theta) - as.numeric(logLik(fit)),
                  max_rel_diff_gls_vs_pinned_covariance = rel(theta_gls, theta),
                  max_rel_diff_gls_vs_pinned_contrast_estimate = rel(co_g$est, co_o$est),
                  max_rel_diff_gls_vs_pinned_contrast_se = rel(co_g$se, co_o$se),
                  nlme_loglik_minus_written_out_reml = ll_gap_nlme,
                  min_eigen_observed_reml_information = min(eigen(info, symmetric = TRUE,
                                                                   only.values = TRUE)$values))))
  cat(sprintf("%-26s steps %d  |score| gls %.2e -> %.2e  loglik gap %.2e  rel diff est %.1e se %.1e\n",
              label, it, max(abs(score_gls)), max(abs(score_opt)), out$convergence$reml_loglik_gap_gls_below_maximum,
              out$convergence$max_rel_diff_gls_vs_pinned_contrast_estimate,
              out$convergence$max_rel_diff_gls_vs_pinned_contrast_se))
  out
}

SEPARATE <- "BASVAL * VISIT + THERAPY * VISIT"
COMMON <- "BASVAL + THERAPY * VISIT"
models <- list(
  change_separate_slopes = fit_one("CHANGE", SEPARATE, "change_separate_slopes"),
  change_common_slope = fit_one("CHANGE", COMMON, "change_common_slope"),
  hamdtl17_separate_slopes = fit_one("HAMDTL17", SEPARATE, "hamdtl17_separate_slopes"),
  hamdtl17_common_slope = fit_one("HAMDTL17", COMMON, "hamdtl17_common_slope")
)

# the raw total and the change give the same contrasts, SEs, covariance and REML log-likelihood
for (m in c("separate_slopes", "common_slope")) {
  a <- models[[paste0("change_", m)]]; b <- models[[paste0("hamdtl17_", m)]]
  dif <- max(abs(unlist(a$contrast_drug_minus_placebo) - unlist(b$contrast_drug_minus_placebo)))
  dcov <- max(abs(unlist(a$covariance) - unlist(b$covariance)))
  cat(sprintf("CHANGE vs HAMDTL17 (%s): contrasts %.1e, covariance %.1e, loglik %.1e\n", m, dif, dcov,
              a$reml_loglik - b$reml_loglik))
  stopifnot(dif < 1e-9, dcov < 1e-8, abs(a$reml_loglik - b$reml_loglik) < 1e-8)
}

# ---- external cross-check: SAS PROC MIXED shipped with rbmi ------------------------------------------
# openpharma/rbmi, misc/antidepressant_analysis/results_SAS.pdf (run by antidepressant_data_analysis.sas:
# MODEL change = basval*VISIT THERAPY*VISIT / DDFM=KR; REPEATED VISIT / TYPE=UN SUBJECT=PATIENT;
# LSMEANS THERAPY*VISIT / DIFFS) on the same 608 rows. Printed to 4 decimals; its SEs are Kenward-Roger
# adjusted (DDFM=KR), so only estimates, covariance and -2 Res Log Like are comparable with ours.
sas <- list(
  source = paste("openpharma/rbmi, misc/antidepressant_analysis/results_SAS.pdf (SAS PROC MIXED, REML,",
                 "TYPE=UN, DDFM=KR), model change = basval*VISIT THERAPY*VISIT; numbers as printed"),
  minus2_reml_loglik = 3494.20285008,
  covariance = list(c(19.6845, 16.5157, 15.3879, 16.3599), c(16.5157, 34.2105, 25.4250, 26.1843),
                    c(15.3879, 25.4250, 38.4363, 33.8949), c(16.3599, 26.1843, 33.8949, 45.2587)),
  lsmeans = list(`4` = list(DRUG = c(-1.6051, 0.4865), PLACEBO = c(-1.6969, 0.4747)),
                 `5` = list(DRUG = c(-4.2200, 0.6579), PLACEBO = c(-2.8168, 0.6428)),
                 `6` = list(DRUG = c(-6.3663, 0.7101), PLACEBO = c(-4.1416, 0.6967)),
                 `7` = list(DRUG = c(-7.6239, 0.7914), PLACEBO = c(-4.8221, 0.7785))),
  contrast_drug_minus_placebo = list(`4` = c(0.09181, 0.6826, 169), `5` = c(-1.4032, 0.9244, 165),
                                     `6` = c(-2.2247, 1.0008, 162), `7` = c(-2.8018, 1.1163, 150)),
  note = "lsmeans: (estimate, KR SE); contrasts: (estimate, KR SE, KR df)"
)
ref <- models$change_separate_slopes
# SAS stopped a little short of the REML maximum as nlme does: our REML and GLS estimates evaluated at
# SAS's printed covariance reproduce SAS's -2 Res Log Like and estimates at its printed digits
fml_sas <- as.formula(paste("CHANGE ~", SEPARATE))
reml_sas <- make_reml(model.matrix(fml_sas, d), d$CHANGE, d$PATIENT, as.integer(d$VISIT))
S_sas <- do.call(rbind, sas$covariance)
b_sas <- reml_sas$stats_at(S_sas[pairs])$beta
gm <- grid_matrices(fml_sas, "CHANGE")
at_sas <- list(
  minus2_reml_loglik = -2 * reml_sas$loglik(S_sas[pairs]),
  lsmeans = drop(gm$L %*% b_sas),
  contrasts = drop(gm$C %*% b_sas)
)
sas_lsm <- sapply(seq_along(gm$key), function(k) {
  a <- as.character(sub(" .*", "", gm$key[k])); v <- sub(".* ", "", gm$key[k]); sas$lsmeans[[v]][[a]][1]
})
sas_con <- sapply(VISITS, function(v) sas$contrast_drug_minus_placebo[[v]][1])
at_sas_dev <- c(loglik = abs(at_sas$minus2_reml_loglik - sas$minus2_reml_loglik),
                lsmeans = max(abs(at_sas$lsmeans - sas_lsm)), contrasts = max(abs(at_sas$contrasts - sas_con)))
cat("at SAS's printed covariance: "); print(signif(at_sas_dev, 3))
stopifnot(at_sas_dev["loglik"] < 1e-5, at_sas_dev["lsmeans"] < 5.1e-5, at_sas_dev["contrasts"] < 5.1e-5)
sas$max_abs_diff_at_sas_covariance <- as.list(at_sas_dev)
sas_dev <- c(
  loglik = abs(-2 * ref$reml_loglik - sas$minus2_reml_loglik),
  covariance = max(abs(unlist(ref$covariance) - unlist(sas$covariance))),
  lsmeans = max(abs(sapply(VISITS, function(v) sapply(ARMS, function(a)
    ref$lsmeans[[v]][[a]]$estimate - sas$lsmeans[[v]][[a]][1])))),
  contrasts = max(abs(sapply(VISITS, function(v) ref$contrast_drug_minus_placebo[[v]]$estimate -
                               sas$contrast_drug_minus_placebo[[v]][1])))
)
print(signif(sas_dev, 3))
stopifnot(sas_dev["loglik"] < 1e-6, sas_dev["covariance"] < 5e-4, sas_dev["lsmeans"] < 1e-4,
          sas_dev["contrasts"] < 1e-4)
sas$max_abs_diff_vs_pinned <- as.list(sas_dev)

meta <- list(
  generated_by = "tests/validation/r/antidepressant_mmrm.R",
  r_version = R.version.string,
  nlme_version = format(packageVersion("nlme")),
  emmeans_version = format(packageVersion("emmeans")),
  numderiv_version = format(packageVersion("numDeriv")),
  date = format(Sys.Date()),
  data = csv_path,
  model = paste("nlme::gls(y ~ ..., correlation = corSymm(form = ~ as.integer(VISIT) | PATIENT),",
                "weights = varIdent(form = ~ 1 | VISIT), method = 'REML', control = glsControl(tolerance = 1e-10,",
                "msTol = 1e-10, msMaxIter = 500, maxIter = 500)); VISIT factor 4..7, THERAPY factor with PLACEBO",
                "as reference; all 608 observed rows (MAR)"),
  formulas = list(separate_slopes = SEPARATE, common_slope = COMMON),
  pinned = paste("The top-level numbers of each model are at the exact REML maximum: gls's estimate refined by",
                 "Newton steps in theta = vech(Sigma) with the analytic REML score (max |score| at the end in",
                 "'convergence'); 'gls' holds nlme's own numbers, which stop short of the maximum (see",
                 "'convergence': log-likelihood gap, score, relative differences)."),
  se = "model-based: sqrt(diag(L (X' Sigma^-1 X)^-1 L')), as vcov(gls) and emmeans(mode = 'df.error')",
  lsmeans = "emmeans' reference grid: BASVAL at its mean over the 608 analysed rows (basval_mean_rows)",
  df = "nlme's gls gives no Satterthwaite or Kenward-Roger degrees of freedom; none are pinned",
  hamdtl17 = paste("HAMDTL17 = CHANGE + BASVAL and BASVAL is a covariate, so the HAMDTL17 models give the same",
                   "contrasts, SEs, covariance and REML log-likelihood as the CHANGE models (checked here)")
)

num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) && !is.integer(x) && length(x) == 1)
    return(structure(if (is.na(x)) "null" else sprintf("%.17g", x), class = "json"))
  if (is.numeric(x) && !is.integer(x))
    return(structure(paste0("[", paste(sprintf("%.17g", x), collapse = ", "), "]"), class = "json"))
  x
}
dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(list(meta = meta, data_facts = facts, models = num17(models), sas_rbmi = num17(sas)),
                  auto_unbox = TRUE, digits = NA, na = "null", null = "null", json_verbatim = TRUE,
                  pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
