# R side of benchmarks/bench_bayes.py: the same outcomes timed with metafor (REML) and brms.
# Usage: Rscript benchmarks/r/bayes_brms.R [INPUT.csv] [PRIOR ...]
#   INPUT.csv  default benchmarks/results/bayes_input.csv (outcome, study, year, yi, sei)
#   PRIOR      any of half_normal_0.5, half_cauchy_0.5 (default: both)
# Prints "TIMING key value" lines that bench_bayes.py parses (wall seconds from proc.time()).
#
# brms: mu ~ N(0, 1), tau ~ HalfNormal(0.5) and HalfCauchy(0.5): two Stan programs, so two compiles;
# later outcomes reuse each compiled program through update(newdata = ...), as an efficient brms user
# would. The Rhodes / Turner priors are priors on log(tau^2) (log-t / log-normal) and are not brms prior
# classes, so brms is timed on 2 of the 4 priors; the per-refit time is reported so the full 4-prior cost
# can be extrapolated. Then the cumulative analysis by year of outcome_01 under HalfNormal(0.5), one refit
# per distinct year with >= 2 studies (as imrstats.bayes.cumulative_bayes). Every fit: 4 chains x
# (1000 warmup + 1000 draws), cores = 2, adapt_delta = 0.99.
args <- commandArgs(trailingOnly = TRUE)
input <- if (length(args) >= 1) args[1] else "benchmarks/results/bayes_input.csv"
wanted <- if (length(args) >= 2) args[2:length(args)] else c("half_normal_0.5", "half_cauchy_0.5")
d <- read.csv(input, stringsAsFactors = FALSE)
outcomes <- split(d, d$outcome)
timing <- function(key, secs) cat(sprintf("TIMING %s %.3f\n", key, secs))
now <- function() proc.time()[["elapsed"]]

t0 <- now()
suppressPackageStartupMessages(library(metafor))
timing("metafor_load_s", now() - t0)
t0 <- now()
for (o in outcomes) fit <- rma(yi = o$yi, sei = o$sei, method = "REML")
timing("metafor_all_outcomes_s", now() - t0)

if (!requireNamespace("brms", quietly = TRUE)) {
  cat("TIMING brms_status not_installed\n")
  quit(status = 0)
}
t0 <- now()
suppressPackageStartupMessages(library(brms))
timing("brms_load_s", now() - t0)

all_priors <- list(
  half_normal_0.5 = c(prior(normal(0, 1), class = Intercept), prior(normal(0, 0.5), class = sd)),
  half_cauchy_0.5 = c(prior(normal(0, 1), class = Intercept), prior(cauchy(0, 0.5), class = sd))
)
priors <- all_priors[intersect(wanted, names(all_priors))]
fit_args <- list(chains = 4, cores = 2, iter = 2000, warmup = 1000, refresh = 0, silent = 2)
total <- 0
n_fits <- 0
first_fits <- list()
for (p in names(priors)) {
  t0 <- now()
  first <- do.call(brm, c(list(formula = yi | se(sei) ~ 1 + (1 | study), data = outcomes[[1]],
                               prior = priors[[p]], seed = 1, control = list(adapt_delta = 0.99)), fit_args))
  first_s <- now() - t0
  first_fits[[p]] <- first
  timing(sprintf("brms_first_fit_%s_s", p), first_s)
  t0 <- now()
  for (o in outcomes[-1]) fit <- update(first, newdata = o, recompile = FALSE, refresh = 0, silent = 2, seed = 1)
  refit_s <- now() - t0
  timing(sprintf("brms_refits_%s_s", p), refit_s)
  timing(sprintf("brms_per_refit_%s_s", p), refit_s / max(1, length(outcomes) - 1))
  total <- total + first_s + refit_s
  n_fits <- n_fits + length(outcomes)
}

if ("half_normal_0.5" %in% names(first_fits) && "outcome_01" %in% names(outcomes)) {
  o <- outcomes[["outcome_01"]]
  o <- o[order(o$year), ]
  t0 <- now()
  n_cum <- 0
  for (yr in sort(unique(o$year))) {
    sub <- o[o$year <= yr, ]
    if (nrow(sub) < 2) next
    fit <- update(first_fits[["half_normal_0.5"]], newdata = sub, recompile = FALSE, refresh = 0,
                  silent = 2, seed = 1)
    n_cum <- n_cum + 1
  }
  cum_s <- now() - t0
  timing("brms_cumulative_fits", n_cum)
  timing("brms_cumulative_s", cum_s)
  total <- total + cum_s
  n_fits <- n_fits + n_cum
}
timing("brms_fits", n_fits)
timing("brms_priors", length(priors))
timing("brms_total_s", total)
