# Reference numbers for conditional mean imputation with bootstrap inference and for the MMRM as the analysis of
# conditional-mean-completed data (Wolbers et al. 2022; rbmi's method_condmean(type = "bootstrap") and pool()),
# on the antidepressant trial data (rbmi's example data set), written to
# tests/validation/data/rbmi_condmean_bootstrap_reference.json and checked by
# tests/validation/test_rbmi_condmean_bootstrap.py.
#
# Run from the repository root:  Rscript tests/validation/r/rbmi_condmean_bootstrap.R [out.json]
# Needs nlme, numDeriv and jsonlite; rbmi itself is not used: every step is written out here from the papers'
# definitions (and rbmi's documentation of pool()), independently of the Python code.
#
# 1. Data and ICEs as tests/validation/r/rbmi_condmean_pieces.R: CHANGE at visits 4-7, JR from the first visit of
#    the final run of missing visits (patient 3618's intermittent value MAR), PLACEBO the reference arm.
# 2. B = 4 bootstrap samples drawn here (set.seed below; within each arm, DRUG then PLACEBO, as many patients as
#    the arm holds, with replacement: rbmi's sample_ids with the arm as stratum); their patient ids are written
#    out, so the Python test analyses the same samples (its own random stream is not R's).
# 3. Per sample (and for the full data): the imputation model CHANGE ~ BASVAL * VISIT + THERAPY * VISIT,
#    unstructured covariance, REML, fitted by nlme::gls on the sample's observed rows (a patient drawn twice is two
#    patients) and refined to the exact REML maximum by Newton steps on the analytic REML score (as
#    tests/validation/r/antidepressant_mmrm.R); each sampled patient's missing values completed by their
#    conditional mean under JR; lm(CHANGE ~ THERAPY + BASVAL) per visit on the sample's completed rows: the
#    DRUG - PLACEBO coefficient and the LS means at the sample's mean BASVAL.
# 4. Pooled as rbmi's pool() documents it, for confidence levels 0.95 and 0.5 (with B = 4 the 95% percentile
#    limits are the extremes; at 50% they interpolate): "percentile", the type-6 quantiles of the B estimates, p by
#    inverting the interval (uniroot to 1e-14 on the type-6 quantile function, with the all-of-one-sign cases);
#    "normal", se = sd of the B estimates, normal CI and p around the full-data estimate.
# 5. The MMRM as the analysis of the completed full data: with one common BASVAL slope
#    (CHANGE ~ BASVAL + THERAPY * VISIT for the imputation model and for the analysis), gls on the 688 completed
#    rows refined to the REML maximum: DRUG - PLACEBO per visit and the LS means (BASVAL at its mean), estimate and
#    model-based SE; and with a slope per visit, where the MMRM's estimates and SEs equal the ANCOVA's (checked
#    here, stopifnot, and written out).

suppressPackageStartupMessages({
  library(nlme)
  library(numDeriv)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[1] else "tests/validation/data/rbmi_condmean_bootstrap_reference.json"
VISITS <- c("4", "5", "6", "7")
T <- length(VISITS)
B <- 4L
SEED <- 20240611L

d <- read.csv("data/examples/antidepressant/antidepressant.csv",
              colClasses = c(PATIENT = "character", VISIT = "character", THERAPY = "character"))
stopifnot(nrow(d) == 608)
patients <- sort(unique(d$PATIENT))
per <- d[!duplicated(d$PATIENT), c("PATIENT", "THERAPY", "BASVAL")]
per <- per[match(patients, per$PATIENT), ]
n <- length(patients)
Y <- matrix(NA_real_, n, T, dimnames = list(patients, VISITS))
Y[cbind(match(d$PATIENT, patients), match(d$VISIT, VISITS))] <- d$CHANGE
last_obs <- apply(!is.na(Y), 1, function(o) if (any(o)) max(which(o)) else 0L)
ice_index <- ifelse(last_obs < T, last_obs + 1L, T + 1L)  # 1-based; T + 1 = no ICE
stopifnot(ice_index[patients == "3618"] == T + 1L, sum(ice_index <= T) == 43)
# no patient has an observed value at or after the ICE: the imputation model uses every observed value

# ---- REML in theta = vech(Sigma) (lower triangle, row-major), per patient ------------------------------------
pairs <- do.call(rbind, lapply(1:T, function(u) cbind(u, 1:u)))
sigma_of <- function(theta) {
  S <- matrix(0, T, T); S[pairs] <- theta; S[pairs[, 2:1, drop = FALSE]] <- theta; S
}
E_of <- lapply(seq_len(nrow(pairs)), function(h) {
  E <- matrix(0, T, T); E[pairs[h, 1], pairs[h, 2]] <- 1; E[pairs[h, 2], pairs[h, 1]] <- 1; E
})
make_reml <- function(X, y, id, visit) {
  groups <- split(seq_along(y), id)
  p <- ncol(X)
  stats_at <- function(theta) {
    S <- sigma_of(theta)
    xwx <- matrix(0, p, p); xwy <- numeric(p); W <- list()
    for (k in seq_along(groups)) {
      g <- groups[[k]]
      W[[k]] <- chol2inv(chol(S[visit[g], visit[g], drop = FALSE]))
      Xi <- X[g, , drop = FALSE]
      xwx <- xwx + crossprod(Xi, W[[k]] %*% Xi)
      xwy <- xwy + crossprod(Xi, W[[k]] %*% y[g])
    }
    list(W = W, xwx = xwx, beta = drop(solve(xwx, xwy)))
  }
  # dl/dtheta_h = -tr(P G_h)/2 + y'P G_h P y/2 (Jennrich & Schluchter 1986)
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
  list(score = score, stats_at = stats_at)
}

# the exact REML fit of `fml` to long data (columns PID, VISIT factor, THERAPY factor, BASVAL, CHANGE; observed rows)
fit_exact <- function(dat, fml) {
  dat <- dat[order(dat$PID, as.integer(dat$VISIT)), ]
  dat$vnum <- as.integer(dat$VISIT)
  fit <- gls(fml, data = dat, method = "REML", correlation = corSymm(form = ~ vnum | PID),
             weights = varIdent(form = ~ 1 | VISIT),
             control = glsControl(tolerance = 1e-10, msTol = 1e-10, msMaxIter = 500, maxIter = 500))
  X <- model.matrix(fml, dat)
  reml <- make_reml(X, dat$CHANGE, dat$PID, dat$vnum)
  complete <- names(which(table(dat$PID) == T))[1]
  theta <- unclass(getVarCov(fit, individual = complete))[pairs]
  for (it in 1:40) {
    g <- reml$score(theta)
    H <- jacobian(reml$score, theta, method = "simple")
    step <- -solve((H + t(H)) / 2, g)
    theta <- theta + step
    scale <- sqrt(diag(sigma_of(theta))[pairs[, 1]] * diag(sigma_of(theta))[pairs[, 2]])
    if (max(abs(step) / scale) < 1e-13) break
  }
  stopifnot(it < 40, max(abs(reml$score(theta))) < 1e-8)
  s <- reml$stats_at(theta)
  list(beta = setNames(s$beta, colnames(X)), sigma = sigma_of(theta), cov_beta = solve(s$xwx), steps = it)
}

long_of <- function(rows, values) {  # rows: patient indices (repeats = new patients); values: (length(rows), T)
  data.frame(PID = rep(sprintf("%s_%03d", patients[rows], seq_along(rows)), each = T),
             VISIT = factor(rep(VISITS, length(rows)), levels = VISITS),
             THERAPY = factor(rep(per$THERAPY[rows], each = T), levels = c("PLACEBO", "DRUG")),
             BASVAL = rep(per$BASVAL[rows], each = T),
             CHANGE = as.vector(t(values)))
}
grid_X <- function(fml) {  # every patient x visit under the own arm and under PLACEBO
  g <- long_of(seq_len(n), matrix(0, n, T))
  g_ref <- g; g_ref$THERAPY <- factor("PLACEBO", levels = c("PLACEBO", "DRUG"))
  list(own = model.matrix(fml, g), ref = model.matrix(fml, g_ref))
}
conditional_fill <- function(y, mu, S) {
  m <- is.na(y)
  if (!any(m)) return(y)
  if (all(m)) return(mu)
  o <- !m
  y[m] <- mu[m] + S[m, o, drop = FALSE] %*% solve(S[o, o, drop = FALSE], y[o] - mu[o])
  y
}
complete_jr <- function(rows, fit, fml) {  # the rows' patients completed under JR at the fit's beta and Sigma
  gx <- grid_X(fml)
  mu_own <- matrix(gx$own %*% fit$beta, n, T, byrow = TRUE)
  mu_ref <- matrix(gx$ref %*% fit$beta, n, T, byrow = TRUE)
  t(vapply(rows, function(i) {
    k <- ice_index[i]
    mu <- if (k <= T) ifelse(seq_len(T) >= k, mu_ref[i, ], mu_own[i, ]) else mu_own[i, ]
    conditional_fill(Y[i, ], mu, fit$sigma)
  }, numeric(T)))
}
ancova <- function(rows, Yc) {  # DRUG - PLACEBO, LS mean PLACEBO, LS mean DRUG per visit (12 numbers)
  arm <- factor(per$THERAPY[rows], levels = c("PLACEBO", "DRUG"))
  bas <- per$BASVAL[rows]
  out <- matrix(NA_real_, 3, T)
  for (k in seq_len(T)) {
    b <- coef(lm(Yc[, k] ~ arm + bas))
    out[, k] <- c(b[2], b[1] + b[3] * mean(bas), b[1] + b[2] + b[3] * mean(bas))
  }
  as.vector(t(out))  # contrast at 4..7, LS mean PLACEBO at 4..7, LS mean DRUG at 4..7
}
observed_long <- function(rows) {
  dat <- long_of(rows, Y[rows, , drop = FALSE])
  dat[!is.na(dat$CHANGE), ]
}

# ---- 2-3. bootstrap samples, their fits, completed data and ANCOVAs ----------------------------------------------
SEPARATE <- CHANGE ~ BASVAL * VISIT + THERAPY * VISIT
COMMON <- CHANGE ~ BASVAL + THERAPY * VISIT
set.seed(SEED)
arms_sorted <- sort(unique(per$THERAPY))  # DRUG, PLACEBO
samples <- lapply(seq_len(B), function(b) unlist(lapply(arms_sorted, function(a) {
  members <- which(per$THERAPY == a)
  members[sample(length(members), length(members), replace = TRUE)]
})))
ref_json <- fromJSON("tests/validation/data/antidepressant_mmrm_reference.json")
full_fit <- fit_exact(observed_long(seq_len(n)), SEPARATE)
pinned <- as.matrix(ref_json$models$change_separate_slopes$covariance)
stopifnot(max(abs(full_fit$sigma - pinned)) < 1e-8 * max(abs(pinned)))
estimates <- list(ancova(seq_len(n), complete_jr(seq_len(n), full_fit, SEPARATE)))
steps <- full_fit$steps
for (b in seq_len(B)) {
  rows <- samples[[b]]
  fit <- fit_exact(observed_long(rows), SEPARATE)
  steps <- c(steps, fit$steps)
  estimates[[b + 1]] <- ancova(rows, complete_jr(rows, fit, SEPARATE))
  cat(sprintf("sample %d: %d Newton steps, contrast at 7 %.6f\n", b, fit$steps, estimates[[b + 1]][4]))
}
est <- do.call(rbind, estimates)  # (1 + B) x 12
names12 <- c(paste0("contrast_", VISITS), paste0("lsmean_placebo_", VISITS), paste0("lsmean_drug_", VISITS))
colnames(est) <- names12

# ---- 4. pooling ---------------------------------------------------------------------------------------------------
q6 <- function(x, p) quantile(x, probs = p, type = 6, names = FALSE)
percentile_p <- function(x) {
  if (all(x == 0)) return(1)
  if (min(x) > 0) return(min(1, 2 * min(0, 1)))
  if (max(x) < 0) return(min(1, 2 * min(1, 0)))
  if (any(x == 0)) {
    r <- rank(x, ties.method = "first")[x == 0] / (length(x) + 1)
    return(min(1, 2 * min(min(r), 1 - max(r))))
  }
  q <- uniroot(function(p) q6(x, p), lower = 0, upper = 1, tol = 1e-14)$root
  min(1, 2 * min(q, 1 - q))
}
pool_at <- function(level) {
  a <- 1 - level
  setNames(lapply(seq_len(ncol(est)), function(j) {
    x <- est[-1, j]
    point <- est[1, j]
    se <- sd(x)
    z <- qnorm(1 - a / 2)
    list(
      percentile = list(estimate = point, ci_low = q6(x, a / 2), ci_high = q6(x, 1 - a / 2), p = percentile_p(x)),
      normal = list(estimate = point, se = se, ci_low = point - z * se, ci_high = point + z * se,
                    p = 2 * pnorm(-abs(point / se)))
    )
  }), names12)
}

# ---- 5. the MMRM as the analysis of the completed full data ---------------------------------------------------
mmrm_analysis <- function(fml) {
  imp <- fit_exact(observed_long(seq_len(n)), fml)
  Yc <- complete_jr(seq_len(n), imp, fml)
  ana <- fit_exact(long_of(seq_len(n), Yc), fml)
  grid <- expand.grid(VISIT = factor(VISITS, levels = VISITS), THERAPY = factor(c("PLACEBO", "DRUG"),
                                                                             levels = c("PLACEBO", "DRUG")))
  grid$BASVAL <- mean(per$BASVAL)
  grid$CHANGE <- 0
  L <- model.matrix(fml, grid)
  L12 <- rbind(L[grid$THERAPY == "DRUG", ] - L[grid$THERAPY == "PLACEBO", ], L[grid$THERAPY == "PLACEBO", ],
               L[grid$THERAPY == "DRUG", ])
  list(estimate = setNames(as.list(drop(L12 %*% ana$beta)), names12),
       se = setNames(as.list(sqrt(rowSums((L12 %*% ana$cov_beta) * L12))), names12),
       ancova = setNames(as.list(ancova(seq_len(n), Yc)), names12), Yc = Yc, imputation_sigma = imp$sigma)
}
common <- mmrm_analysis(COMMON)
pinned_common <- as.matrix(ref_json$models$change_common_slope$covariance)
stopifnot(max(abs(common$imputation_sigma - pinned_common)) < 1e-8 * max(abs(pinned_common)))
separate <- mmrm_analysis(SEPARATE)
# with a slope per visit the MMRM on complete data is OLS per visit (Zellner 1962): estimates equal the ANCOVA's,
# and its REML Sigma is the residual cross-products / (n - 3), so the SEs equal the ANCOVA's
sep_est <- unlist(separate$estimate); sep_anc <- unlist(separate$ancova)
stopifnot(max(abs(sep_est - sep_anc)) < 1e-9)
anc_se <- unlist(lapply(seq_len(T), function(k) {
  arm <- factor(per$THERAPY, levels = c("PLACEBO", "DRUG"))
  f <- lm(separate$Yc[, k] ~ arm + per$BASVAL)
  sqrt(vcov(f)[2, 2])
}))
stopifnot(max(abs(unlist(separate$se)[1:T] - anc_se)) < 1e-8)

out <- list(
  meta = list(
    generated_by = "tests/validation/r/rbmi_condmean_bootstrap.R",
    r_version = R.version.string,
    nlme_version = as.character(packageVersion("nlme")),
    data = "data/examples/antidepressant/antidepressant.csv",
    seed = SEED,
    samples = paste("B bootstrap samples: within each arm (DRUG, then PLACEBO) as many patients as it holds, drawn",
                    "with replacement by sample(); patient ids in drawn order"),
    imputation_model = "CHANGE ~ BASVAL * VISIT + THERAPY * VISIT, unstructured Sigma, REML (exact maximum)",
    strategy = "JR from the first visit of the final run of missing visits; reference PLACEBO",
    analysis = "lm(CHANGE ~ THERAPY + BASVAL) per visit on the sample's completed rows; LS means at its mean BASVAL",
    order = "12 numbers: DRUG - PLACEBO at 4..7, LS mean PLACEBO at 4..7, LS mean DRUG at 4..7",
    newton_steps = steps
  ),
  samples = lapply(samples, function(rows) patients[rows]),
  estimates = lapply(seq_len(nrow(est)), function(i) setNames(as.list(est[i, ]), names12)),
  pool = list(level_0.95 = pool_at(0.95), level_0.5 = pool_at(0.5)),
  mmrm_analysis = list(
    note = paste("JR conditional mean imputation of the full data, then the MMRM on the 688 completed rows;",
                 "model-based SE (X'WX)^-1; LS means at mean BASVAL"),
    common_slope = list(formula = "CHANGE ~ BASVAL + THERAPY * VISIT", estimate = common$estimate, se = common$se,
                        ancova = common$ancova),
    separate_slopes = list(formula = "CHANGE ~ BASVAL * VISIT + THERAPY * VISIT", estimate = separate$estimate,
                           se = separate$se, ancova_se_contrast = anc_se)
  )
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
