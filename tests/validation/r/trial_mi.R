# Reference values for tests/validation/test_trial_vs_r.py (Monte Carlo part): the ITT MI-MMRM.
# Data: tests/validation/data/trial_gaf_f.csv (GAF-F of the default synthetic trial, 198 participants).
# Imputation: mice pmm (5 donors), m = 100, maxit = 5, separately within each arm (rbind of the two
# mids objects), mice's default predictor matrix on site, sex, age, diagnosis, baseline, post, fu12.
# Analysis per completed data set: nlme::gls, y ~ 0 + time + time:arm + time:baseline + site + sex +
# age + diagnosis, unstructured covariance (corSymm(~ visit | id) + varIdent(~ 1 | time)), REML.
# Pooling: mice::pool.scalar with dfcom = n - p_k = 198 - 8 = 190 (the residual df of the per-visit
# model: visit mean, arm, baseline slope, 2 site, sex, age, diagnosis), as imrstats.trial.analyses does.
# Prints, for each of N_REP seeds, the pooled IMR - TAU row at post and at fu12.
# Run from the repository root: N_REP=20 Rscript tests/validation/r/trial_mi.R
suppressPackageStartupMessages({library(mice); library(nlme)})
cat("# mice", format(packageVersion("mice")), "nlme", format(packageVersion("nlme")), R.version.string, "\n")
d <- read.csv("tests/validation/data/trial_gaf_f.csv", stringsAsFactors = TRUE)
vars <- c("site", "sex", "age", "diagnosis", "baseline", "post", "fu12")
n_rep <- as.integer(Sys.getenv("N_REP", "20"))
dfcom <- nrow(d) - 8
fml <- y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis
for (rep in seq_len(n_rep)) {
  t0 <- proc.time()[["elapsed"]]
  set.seed(2000 + rep)
  parts <- lapply(c("IMR", "TAU"), function(a) {
    sub <- d[d$arm == a, vars]
    mice(sub, m = 100, maxit = 5, method = "pmm", printFlag = FALSE)
  })
  ids <- c(as.character(d$id[d$arm == "IMR"]), as.character(d$id[d$arm == "TAU"]))
  arms <- c(rep("IMR", sum(d$arm == "IMR")), rep("TAU", sum(d$arm == "TAU")))
  Q <- matrix(NA, 100, 2); U <- matrix(NA, 100, 2)
  for (i in 1:100) {
    w <- rbind(complete(parts[[1]], i), complete(parts[[2]], i))
    w$id <- ids; w$arm <- factor(arms, levels = c("TAU", "IMR"))
    long <- rbind(transform(w, time = "post", visit = 1L, y = post),
                  transform(w, time = "fu12", visit = 2L, y = fu12))
    long$time <- factor(long$time, levels = c("post", "fu12"))
    long <- long[order(long$id, long$visit), ]
    fit <- gls(fml, data = long, method = "REML", correlation = corSymm(form = ~ visit | id),
               weights = varIdent(form = ~ 1 | time))
    cf <- coef(fit); V <- vcov(fit)
    terms <- c("timepost:armIMR", "timefu12:armIMR")
    Q[i, ] <- cf[terms]; U[i, ] <- diag(V)[match(terms, names(cf))]
  }
  for (k in 1:2) {
    p <- pool.scalar(Q[, k], U[, k], n = dfcom + 1, k = 1)
    cat(sprintf("rep=%d time=%s estimate=%.15g se=%.15g df=%.15g riv=%.15g fmi=%.15g b=%.15g secs=%.1f\n",
                rep, c("post", "fu12")[k], p$qbar, sqrt(p$t), p$df, p$r, p$fmi, p$b,
                proc.time()[["elapsed"]] - t0))
  }
}
