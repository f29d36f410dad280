# R side of benchmarks/bench_bayes.py: the same outcomes timed with metafor (REML) and brms.
# Usage: Rscript benchmarks/r/bayes_brms.R benchmarks/results/bayes_input.csv
# Prints "TIMING key seconds" lines that bench_bayes.py parses.
#
# brms: mu ~ N(0, 1), tau ~ HalfNormal(0.5) and HalfCauchy(0.5) (two Stan programs, so two compiles;
# later outcomes reuse each compiled program through update(newdata = ...)). The Rhodes / Turner
# log(tau^2) priors are not brms prior classes, so brms is timed on 2 of the 4 priors only; the
# per-refit time is reported so the 4-prior cost can be extrapolated.
args <- commandArgs(trailingOnly = TRUE)
input <- if (length(args)) args[1] else "benchmarks/results/bayes_input.csv"
d <- read.csv(input)
outcomes <- split(d, d$outcome)
timing <- function(key, secs) cat(sprintf("TIMING %s %.3f\n", key, secs))

t0 <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(metafor))
timing("metafor_load_s", proc.time()[["elapsed"]] - t0)
t0 <- proc.time()[["elapsed"]]
for (o in outcomes) fit <- rma(yi = o$yi, sei = o$sei, method = "REML")
timing("metafor_all_outcomes_s", proc.time()[["elapsed"]] - t0)

if (!requireNamespace("brms", quietly = TRUE)) {
  cat("TIMING brms_status not_installed\n")
  quit(status = 0)
}
t0 <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(brms))
timing("brms_load_s", proc.time()[["elapsed"]] - t0)

priors <- list(
  half_normal_0.5 = c(prior(normal(0, 1), class = Intercept), prior(normal(0, 0.5), class = sd)),
  half_cauchy_0.5 = c(prior(normal(0, 1), class = Intercept), prior(cauchy(0, 0.5), class = sd))
)
total <- 0
for (p in names(priors)) {
  t0 <- proc.time()[["elapsed"]]
  first <- brm(yi | se(sei) ~ 1 + (1 | study), data = outcomes[[1]], prior = priors[[p]],
               chains = 4, cores = 2, iter = 2000, warmup = 1000, seed = 1, refresh = 0,
               control = list(adapt_delta = 0.99), silent = 2)
  first_s <- proc.time()[["elapsed"]] - t0
  timing(sprintf("brms_first_fit_%s_s", p), first_s)
  t0 <- proc.time()[["elapsed"]]
  for (o in outcomes[-1]) fit <- update(first, newdata = o, recompile = FALSE, refresh = 0, silent = 2, seed = 1)
  refit_s <- proc.time()[["elapsed"]] - t0
  timing(sprintf("brms_refits_%s_s", p), refit_s)
  timing(sprintf("brms_per_refit_%s_s", p), refit_s / (length(outcomes) - 1))
  total <- total + first_s + refit_s
}
timing("brms_two_priors_total_s", total)
