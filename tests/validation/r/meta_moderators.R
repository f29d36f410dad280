# Reference values for imrstats.meta.moderators (rma_mods, predict, confint, permutest, subgroups) from R metafor.
# Run from anywhere (R 4.2.2, metafor 3.8-1):
#   .venv/bin/python tests/validation/data/meta_moderators_make_data.py   (the curated published effects, once)
#   Rscript tests/validation/r/meta_moderators.R
# Reads  tests/validation/data/meta_moderators_published.csv (imrs_client / imrs_clinician effects computed in
#        Python by imrstats.meta.stage.outcome_inputs from data/published/published_outcomes.csv)
# Writes tests/validation/data/meta_moderators_bcg.csv (metafor's dat.bcg, Colditz et al. 1994, with the log risk
#        ratios of escalc(measure = "RR")) and tests/validation/data/meta_moderators_reference.json.
# Every fit uses control = list(threshold = 1e-12, maxiter = 1000): ML / REML tau^2 at the optimum (metafor's
# default stops Fisher scoring when tau^2 changes by < 1e-5); the Python test fits with the same control.
# Deliberate departure checked here: in a model without intercept whose columns do not span the constant
# (mods = ~ ablat - 1), metafor 3.8 still centres yi for tau^2 and QE; imrstats does not. That case is
# referenced by the root of the REML score of the uncentred yi (checked against rma.mv) and QE computed by hand.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
dd <- file.path(here, "..", "data")
ctrl <- list(threshold = 1e-12, maxiter = 1000)

dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(trial = dat$trial, author = dat$author, year = dat$year, ablat = dat$ablat, alloc = dat$alloc,
                  yi = as.numeric(dat$yi), vi = as.numeric(dat$vi))
write.csv(bcg, file.path(dd, "meta_moderators_bcg.csv"), row.names = FALSE)
pub <- read.csv(file.path(dd, "meta_moderators_published.csv"), stringsAsFactors = FALSE)

num <- function(x) if (is.null(x)) NA_real_ else as.numeric(x)
record <- function(fit, data_name, mods, method, knha, newmods = NULL) {
  out <- list(data = data_name, mods = mods, method = method, knha = knha, k = fit$k, p = fit$p,
              terms = rownames(fit$beta), beta = num(fit$beta), se = num(fit$se), statistic = num(fit$zval),
              p_value = num(fit$pval), ci_low = num(fit$ci.lb), ci_high = num(fit$ci.ub),
              tau2 = num(fit$tau2), se_tau2 = num(fit$se.tau2), qe = num(fit$QE), qe_p = num(fit$QEp),
              qm = num(fit$QM), qm_df = num(fit$QMdf), qm_p = num(fit$QMp), i2 = num(fit$I2), h2 = num(fit$H2),
              r2 = num(fit$R2), s2w = num(fit$s2w))
  if (!is.element(method, c("EE", "FE"))) {
    ci <- confint(fit)$random
    out$confint_tau2 <- num(ci["tau^2", c("ci.lb", "ci.ub")])
    out$confint_i2 <- num(ci["I^2(%)", c("ci.lb", "ci.ub")])
  }
  if (!is.null(newmods)) {
    pr <- predict(fit, newmods = newmods)
    out$predict <- list(newmods = unname(as.matrix(newmods)), pred = num(pr$pred), se = num(pr$se),
                        ci_low = num(pr$ci.lb), ci_high = num(pr$ci.ub),
                        pi_low = num(if (is.null(pr$pi.lb)) pr$ci.lb else pr$pi.lb),
                        pi_high = num(if (is.null(pr$pi.ub)) pr$ci.ub else pr$pi.ub))
  }
  out
}

fits <- list()
add <- function(x) fits[[length(fits) + 1]] <<- x
methods <- c("REML", "ML", "DL", "PM", "EE")
ablat_year_new <- cbind(c(10, 30, 50), mean(bcg$year))
for (method in methods) {
  for (knha in c(FALSE, TRUE)) {
    test <- if (knha) "knha" else "z"
    f <- suppressWarnings(rma(yi, vi, mods = ~ ablat + year, data = bcg, method = method, test = test,
                              control = ctrl))
    add(record(f, "bcg", "ablat + year", method, knha, ablat_year_new))
    f <- suppressWarnings(rma(yi, vi, mods = ~ alloc, data = bcg, method = method, test = test, control = ctrl))
    add(record(f, "bcg", "alloc", method, knha, rbind(c(0, 0), c(1, 0), c(0, 1))))
    f <- suppressWarnings(rma(yi, vi, mods = ~ factor(alloc) - 1, data = bcg, method = method, test = test,
                              control = ctrl))
    add(record(f, "bcg", "factor(alloc) - 1", method, knha, diag(3)))
    f <- suppressWarnings(rma(yi, vi, mods = ~ ablat + alloc, data = bcg, method = method, test = test,
                              control = ctrl))
    add(record(f, "bcg", "ablat + alloc", method, knha, cbind(c(20, 40), c(1, 0), c(0, 1))))
  }
}
for (label in c("imrs_client", "imrs_clinician")) {
  d <- pub[pub$outcome_label == label, ]
  for (method in c("REML", "ML", "DL", "PM")) {
    for (knha in c(FALSE, TRUE)) {
      f <- suppressWarnings(rma(yi, vi, mods = ~ year, data = d, method = method,
                                test = if (knha) "knha" else "z", control = ctrl))
      add(record(f, label, "year", method, knha, c(2010, 2020)))
    }
  }
}

# The departure: slope through the origin (no intercept, continuous moderator). REML tau^2 as the root of the
# restricted-likelihood score y'PPy - tr(P) of the uncentred yi (uniroot, tol 1e-15), checked against rma.mv
# (which maximises the same likelihood numerically, to its optimiser's precision); beta, SE at that tau^2 by
# weighted least squares; QE = sum (yi - x b_EE)^2 / vi.
origin <- list()
X1 <- cbind(bcg$ablat)
proj <- function(t2) {
  W <- diag(1 / (bcg$vi + t2))
  W - W %*% X1 %*% solve(t(X1) %*% W %*% X1) %*% t(X1) %*% W
}
score <- function(t2) {
  P <- proj(t2)
  c(t(bcg$yi) %*% P %*% P %*% bcg$yi) - sum(diag(P))
}
tau2_origin <- uniroot(score, c(0, 5), tol = 1e-15)$root
mv <- rma.mv(yi, vi, mods = ~ ablat - 1, random = ~ 1 | trial, data = bcg, method = "REML",
             control = list(rel.tol = 1e-10, iter.max = 1000, eval.max = 1000))
stopifnot(abs(mv$sigma2 - tau2_origin) / tau2_origin < 1e-4)
for (knha in c(FALSE, TRUE)) {
  w <- 1 / (bcg$vi + tau2_origin)
  b <- sum(w * bcg$ablat * bcg$yi) / sum(w * bcg$ablat^2)
  s2w <- if (knha) sum(w * (bcg$yi - bcg$ablat * b)^2) / (nrow(bcg) - 1) else 1
  se <- sqrt(s2w / sum(w * bcg$ablat^2))
  w0 <- 1 / bcg$vi
  b0 <- sum(w0 * bcg$ablat * bcg$yi) / sum(w0 * bcg$ablat^2)
  qe <- sum(w0 * (bcg$yi - bcg$ablat * b0)^2)
  origin[[length(origin) + 1]] <- list(data = "bcg", mods = "ablat - 1", method = "REML", knha = knha,
                                       tau2 = tau2_origin, tau2_rma_mv = mv$sigma2, beta = b, se = se, qe = qe,
                                       qe_p = pchisq(qe, nrow(bcg) - 1, lower.tail = FALSE))
}

# Subgroups by allocation: one rma per subgroup (own tau^2), RevMan's Q-between from the subgroup estimates
# (an inverse-variance equal-effects model of the subgroup estimates: its QE on G - 1 df), and the
# mixed-effects moderator test (common tau^2: QM of mods = ~ alloc).
subgroups <- list()
for (method in c("REML", "DL")) {
  for (knha in c(FALSE, TRUE)) {
    test <- if (knha) "knha" else "z"
    rows <- list()
    for (g in sort(unique(bcg$alloc))) {
      f <- suppressWarnings(rma(yi, vi, data = bcg[bcg$alloc == g, ], method = method, test = test,
                                control = ctrl))
      rows[[length(rows) + 1]] <- list(group = g, k = f$k, estimate = num(f$beta), se = f$se, ci_low = f$ci.lb,
                                       ci_high = f$ci.ub, p_value = f$pval, tau2 = f$tau2, i2 = f$I2, q = f$QE)
    }
    est <- sapply(rows, function(r) r$estimate)
    se <- sapply(rows, function(r) r$se)
    between <- rma(est, sei = se, method = "EE")
    qb <- between$QE
    df <- length(est) - 1
    mod <- suppressWarnings(rma(yi, vi, mods = ~ alloc, data = bcg, method = method, test = test, control = ctrl))
    subgroups[[length(subgroups) + 1]] <- list(
      method = method, knha = knha, groups = rows,
      q_between = qb, q_between_df = df, q_between_p = between$QEp, q_between_i2 = max(0, 100 * (qb - df) / qb),
      qm = mod$QM, qm_df = num(mod$QMdf), qm_p = mod$QMp, tau2_common = mod$tau2)
  }
}

# Permutation tests. (1) Exact: a 7-study subset (trials 1-7), every distinct permutation of the rows of X
# (2520 for ablat, which has a tie; 21 for alloc, 5 random + 2 alternate), so the p-values are deterministic.
# (2) Approximate: all 13 trials, mods = ~ ablat + year, REML, with many iterations; the Python test compares its
# seeded 1000-iteration p-values within their Monte Carlo error.
perm <- list()
sub7 <- bcg[1:7, ]
for (spec in list(list("ablat", ~ ablat, FALSE), list("ablat", ~ ablat, TRUE), list("alloc", ~ alloc, FALSE))) {
  f <- rma(yi, vi, mods = spec[[2]], data = sub7, method = "REML", test = if (spec[[3]]) "knha" else "z",
           control = ctrl)
  pt <- permutest(f, exact = TRUE, progbar = FALSE)
  perm[[length(perm) + 1]] <- list(data = "bcg_trials_1_7", mods = spec[[1]], method = "REML", knha = spec[[3]],
                                   exact = TRUE, iterations = pt$exact.iter, p_value = num(pt$pval),
                                   qm_p = pt$QMp)
}
mc_iter <- 20000
for (knha in c(FALSE, TRUE)) {
  f <- rma(yi, vi, mods = ~ ablat + year, data = bcg, method = "REML", test = if (knha) "knha" else "z",
           control = ctrl)
  set.seed(20240611)
  pt <- permutest(f, iter = mc_iter, progbar = FALSE)
  perm[[length(perm) + 1]] <- list(data = "bcg", mods = "ablat + year", method = "REML", knha = knha,
                                   exact = FALSE, iterations = mc_iter, p_value = num(pt$pval), qm_p = pt$QMp)
}

out <- list(
  generated_by = "tests/validation/r/meta_moderators.R",
  software = paste0("metafor ", packageVersion("metafor"), ", ", R.version.string),
  control = ctrl, fits = fits, origin = origin, subgroups = subgroups, permutest = perm)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           file.path(dd, "meta_moderators_reference.json"))
cat("wrote", file.path(dd, "meta_moderators_reference.json"), "\n")
