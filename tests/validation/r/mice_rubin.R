# Reference values for tests/validation/test_rubin_vs_r.py (deterministic, no random numbers).
# 1. mice::pool.scalar() on the fixed (Q, U) vectors of tests/validation/data/mi_rubin_scalar.csv
#    for several complete-data df settings (n, k): dfcom = n - k.
# 2. mice::pool() on lm(y ~ x1 + g) fitted to the five fixed completed data sets in
#    tests/validation/data/mi_rubin_completed.csv, and summary(..., conf.int = TRUE).
# Run from the repository root: Rscript tests/validation/r/mice_rubin.R
suppressPackageStartupMessages(library(mice))
cat("mice", format(packageVersion("mice")), "R", R.version.string, "\n")
f <- function(x) sprintf("%.15g", x)
s <- read.csv("tests/validation/data/mi_rubin_scalar.csv")
for (set in unique(s$set)) {
  q <- s$Q[s$set == set]; u <- s$U[s$set == set]
  for (nk in list(c(Inf, 1), c(60, 4), c(12, 2))) {
    p <- pool.scalar(q, u, n = nk[1], k = nk[2])
    cat(sprintf("scalar set=%s n=%s k=%s qbar=%s ubar=%s b=%s t=%s df=%s r=%s fmi=%s\n", set,
                nk[1], nk[2], f(p$qbar), f(p$ubar), f(p$b), f(p$t), f(p$df), f(p$r), f(p$fmi)))
  }
}
d <- read.csv("tests/validation/data/mi_rubin_completed.csv", stringsAsFactors = TRUE)
fits <- lapply(split(d, d$imputation), function(x) lm(y ~ x1 + g, data = x))
pooled <- pool(as.mira(fits))
sm <- summary(pooled, conf.int = TRUE)
pp <- pooled$pooled
for (i in seq_len(nrow(pp))) {
  cat(sprintf("pool term=%s estimate=%s ubar=%s b=%s t=%s dfcom=%s df=%s riv=%s lambda=%s fmi=%s se=%s statistic=%s p=%s lo=%s hi=%s\n",
              pp$term[i], f(pp$estimate[i]), f(pp$ubar[i]), f(pp$b[i]), f(pp$t[i]), f(pp$dfcom[i]),
              f(pp$df[i]), f(pp$riv[i]), f(pp$lambda[i]), f(pp$fmi[i]), f(sm$std.error[i]),
              f(sm$statistic[i]), f(sm$p.value[i]), f(sm[["2.5 %"]][i]), f(sm[["97.5 %"]][i])))
}
