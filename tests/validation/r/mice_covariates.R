# Reference values for tests/validation/test_covariate_imputation_vs_r.py.
# tests/validation/data/mi_trial_covariates.csv is mi_trial.csv with age (10%) and sex (8%) missing completely
# at random. As imrstats' ITT imputation does by default (trial.impute_by_arm: true,
# trial.missing_covariates: impute), each arm is imputed on its own by R mice: y_baseline, y_post, y_fu12 and
# age by pmm, sex (a two-level factor) by pmm, site and diagnosis as complete predictors, arm left out
# (constant within an arm), visit order y_baseline, y_post, y_fu12, sex, age; m = 100, maxit = 5. The i-th
# completed data sets of the two arms are stacked, lm(y_fu12 ~ arm + y_baseline + site + sex + age +
# diagnosis) is fitted to each and pooled by pool(). The arm row (IMR - TAU) and the sex and age rows are
# printed for each of n_rep seeds.
# Run from the repository root: N_REP=20 Rscript tests/validation/r/mice_covariates.R
suppressPackageStartupMessages(library(mice))
cat("mice", format(packageVersion("mice")), "R", R.version.string, "\n")
d <- read.csv("tests/validation/data/mi_trial_covariates.csv", stringsAsFactors = TRUE, na.strings = c("", "NA"))
d$arm <- relevel(d$arm, ref = "TAU")
n_rep <- as.integer(Sys.getenv("N_REP", "20"))
visit <- c("y_baseline", "y_post", "y_fu12", "sex", "age")
impute_arm <- function(part, seed) {
  meth <- make.method(part)
  meth[visit] <- "pmm"
  pred <- make.predictorMatrix(part)
  pred[, "arm"] <- 0
  mice(part, m = 100, maxit = 5, method = meth, predictorMatrix = pred, visitSequence = visit,
       seed = seed, printFlag = FALSE)
}
cat("missing:", colSums(is.na(d)), "\n")
for (rep in seq_len(n_rep)) {
  t0 <- proc.time()[["elapsed"]]
  imp_imr <- impute_arm(d[d$arm == "IMR", ], 2000 + rep)
  imp_tau <- impute_arm(d[d$arm == "TAU", ], 3000 + rep)
  fits <- lapply(seq_len(100), function(i) {
    lm(y_fu12 ~ arm + y_baseline + site + sex + age + diagnosis,
       data = rbind(complete(imp_imr, i), complete(imp_tau, i)))
  })
  p <- pool(as.mira(fits))$pooled
  for (term in c("armIMR", "sexmale", "age")) {
    a <- p[p$term == term, ]
    cat(sprintf("rep=%d term=%s estimate=%.15g se=%.15g df=%.15g riv=%.15g fmi=%.15g b=%.15g\n",
                rep, term, a$estimate, sqrt(a$t), a$df, a$riv, a$fmi, a$b))
  }
  cat(sprintf("rep=%d secs=%.1f\n", rep, proc.time()[["elapsed"]] - t0))
}
