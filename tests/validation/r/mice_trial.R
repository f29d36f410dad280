# Reference values for tests/validation/test_imputation_vs_r.py.
# Multiple imputation of tests/validation/data/mi_trial.csv by R mice (pmm and norm, m = 100,
# maxit = 5, all other columns as predictors), then lm(y_fu12 ~ arm + y_baseline + site + sex +
# age + diagnosis) on each completed data set, pooled by pool(). The pooled arm (IMR - TAU) row is
# printed for each of n_rep independent seeds, so the Python test can compare against R's mean
# over seeds and derive its tolerance from R's own Monte Carlo spread.
# Run from the repository root: Rscript tests/validation/r/mice_trial.R
suppressPackageStartupMessages(library(mice))
cat("mice", format(packageVersion("mice")), "R", R.version.string, "\n")
d <- read.csv("tests/validation/data/mi_trial.csv", stringsAsFactors = TRUE)
d$arm <- relevel(d$arm, ref = "TAU")  # coefficient armIMR = IMR - TAU
n_rep <- as.integer(Sys.getenv("N_REP", "10"))
meth <- make.method(d)
for (method in c("pmm", "norm")) {
  meth[c("y_baseline", "y_post", "y_fu12")] <- method
  for (rep in seq_len(n_rep)) {
    t0 <- proc.time()[["elapsed"]]
    imp <- mice(d, m = 100, maxit = 5, method = meth, seed = 1000 + rep, printFlag = FALSE)
    if (!is.null(imp$loggedEvents)) print(imp$loggedEvents)
    fit <- with(imp, lm(y_fu12 ~ arm + y_baseline + site + sex + age + diagnosis))
    p <- pool(fit)$pooled
    a <- p[p$term == "armIMR", ]
    cat(sprintf("%s rep=%d estimate=%.15g se=%.15g df=%.15g riv=%.15g fmi=%.15g b=%.15g ubar=%.15g dfcom=%.15g secs=%.1f\n",
                method, rep, a$estimate, sqrt(a$t), a$df, a$riv, a$fmi, a$b, a$ubar, a$dfcom,
                proc.time()[["elapsed"]] - t0))
  }
}
