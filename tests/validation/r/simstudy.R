# Reference performance measures for imrstats.trial.simstudy.aggregate: Morris, White & Crowther 2019
# (Stat Med 38:2074), Table 6, written out in base R from the paper's formulas (rsimsum is not installed).
# Input: tests/validation/data/simstudy_replicates.csv (simstudy_make_data.py). Rows with an error are
# failed analyses and are left out. Run from the project root: Rscript tests/validation/r/simstudy.R
d <- read.csv("tests/validation/data/simstudy_replicates.csv", stringsAsFactors = FALSE)
d$error[is.na(d$error)] <- ""
alpha <- 0.05
out <- function(s, name, est, mcse) cat(sprintf("%s %s %.15g %.15g\n", s, name, est, mcse))
for (s in unique(d$scenario)) {
  g <- d[d$scenario == s & d$error == "", ]
  th <- g$truth[1]; x <- g$estimate; n <- length(x); v <- g$se^2
  cat(sprintf("%s n_rep %d n_failed %d\n", s, n, sum(d$scenario == s) - n))
  out(s, "bias", mean(x) - th, sqrt(sum((x - mean(x))^2) / (n * (n - 1))))
  empse <- sd(x)
  out(s, "empirical_se", empse, empse / sqrt(2 * (n - 1)))
  mse <- mean((x - th)^2)
  out(s, "mse", mse, sqrt(sum(((x - th)^2 - mse)^2) / (n * (n - 1))))
  modse <- sqrt(mean(v))
  out(s, "model_se", modse, sqrt(var(v) / (4 * n * modse^2)))
  out(s, "rel_error_model_se_pct", 100 * (modse / empse - 1),
      100 * (modse / empse) * sqrt(var(v) / (4 * n * modse^4) + 1 / (2 * (n - 1))))
  cov <- mean(g$ci_low <= th & th <= g$ci_high)
  out(s, "coverage", cov, sqrt(cov * (1 - cov) / n))
  rej <- mean(g$p <= alpha)
  out(s, if (th == 0) "type_i_error" else "power", rej, sqrt(rej * (1 - rej) / n))
}
