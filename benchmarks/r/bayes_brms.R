# R side of benchmarks/bench_bayes.py: the same outcomes timed with metafor (REML) and brms.
# Usage: Rscript benchmarks/r/bayes_brms.R [OPTIONS] [INPUT.csv] [PRIOR ...]
#   INPUT.csv  default benchmarks/results/bayes_input.csv; columns outcome, study, year, yi, sei and optionally
#              mu_loc, mu_scale  the Normal prior of mu per outcome (default 0, 1)
#              tau_priors        ";"-separated tau priors of that outcome, each half_normal_<scale> or
#                                half_cauchy_<scale> (default: the PRIOR arguments)
#              cumulative        TRUE for the outcome(s) analysed cumulatively by year (default: outcome_01 only)
#   PRIOR      keep only these tau priors (default: half_normal_0.5 half_cauchy_0.5)
#   OPTIONS    --chains=4 --warmup=1000 --draws=1000 (post-warmup per chain) --adapt-delta=0.99 --cores=2
#              --cumulative-full-step=yes (no: skip the step that holds every study, as the imrstats stage
#              reuses its main fit there)
# Prints "TIMING key value" lines that bench_bayes.py parses (wall seconds from proc.time()).
#
# brms: yi | se(sei) ~ 1 + (1 | study). Every distinct (mu prior, tau prior) is its own Stan program, so one
# compile each; later outcomes with the same priors reuse the compiled program through update(newdata = ...),
# as an efficient brms user would. The Rhodes / Turner priors are priors on log(tau^2) (log-t / log-normal)
# and are not brms prior classes, so brms runs only the half-normal / half-Cauchy fits; the per-refit time
# is reported so the full cost can be extrapolated. Then the cumulative analysis by year of each cumulative
# outcome under its first tau prior, one refit per distinct year with >= 2 studies (as
# imrstats.meta.bayes.cumulative_bayes). Defaults (part c): 4 chains x (1000 warmup + 1000 draws), cores = 2,
# adapt_delta = 0.99.
args <- commandArgs(trailingOnly = TRUE)
is_opt <- grepl("^--", args)
opts <- list(chains = "4", warmup = "1000", draws = "1000", `adapt-delta` = "0.99", cores = "2",
             `cumulative-full-step` = "yes")
for (a in args[is_opt]) {
  kv <- strsplit(sub("^--", "", a), "=", fixed = TRUE)[[1]]
  if (length(kv) != 2 || !(kv[1] %in% names(opts))) stop("unknown option ", a, "; known: ", paste(names(opts), collapse = ", "))
  opts[[kv[1]]] <- kv[2]
}
args <- args[!is_opt]
input <- if (length(args) >= 1) args[1] else "benchmarks/results/bayes_input.csv"
wanted <- if (length(args) >= 2) args[2:length(args)] else c("half_normal_0.5", "half_cauchy_0.5")
d <- read.csv(input, stringsAsFactors = FALSE)
if (!"mu_loc" %in% names(d)) d$mu_loc <- 0
if (!"mu_scale" %in% names(d)) d$mu_scale <- 1
if (!"tau_priors" %in% names(d)) d$tau_priors <- paste(wanted, collapse = ";")
if (!"cumulative" %in% names(d)) d$cumulative <- d$outcome == "outcome_01"
d$cumulative <- as.logical(d$cumulative)
outcomes <- split(d, d$outcome)
timing <- function(key, secs) cat(sprintf("TIMING %s %.3f\n", key, secs))
now <- function() proc.time()[["elapsed"]]
cpu <- function() { p <- proc.time(); sum(p[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE) }

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

tau_stan <- function(key) {           # "half_normal_0.5" -> "normal(0, 0.5)" on class sd (brms truncates at 0)
  family <- sub("_[^_]*$", "", key)
  scale <- sub("^.*_", "", key)
  if (family == "half_normal") return(sprintf("normal(0, %s)", scale))
  if (family == "half_cauchy") return(sprintf("cauchy(0, %s)", scale))
  NA_character_
}
# one prior set per distinct (mu prior, tau prior); its label is the tau key, plus the mu prior if not N(0, 1)
sets <- list()
for (name in names(outcomes)) {
  o <- outcomes[[name]]
  taus <- strsplit(o$tau_priors[1], ";", fixed = TRUE)[[1]]
  taus <- taus[taus %in% wanted | length(args) < 2]
  taus <- taus[!is.na(vapply(taus, tau_stan, ""))]
  for (tau in taus) {
    label <- if (o$mu_loc[1] == 0 && o$mu_scale[1] == 1) tau else sprintf("%s_mu_normal_%g_%g", tau, o$mu_loc[1], o$mu_scale[1])
    if (is.null(sets[[label]])) {
      sets[[label]] <- list(prior = c(prior_string(sprintf("normal(%g, %g)", o$mu_loc[1], o$mu_scale[1]), class = "Intercept"),
                                      prior_string(tau_stan(tau), class = "sd")), outcomes = character(0))
    }
    sets[[label]]$outcomes <- c(sets[[label]]$outcomes, name)
  }
}
chains <- as.integer(opts$chains)
warmup <- as.integer(opts$warmup)
fit_args <- list(chains = chains, cores = as.integer(opts$cores), iter = warmup + as.integer(opts$draws),
                 warmup = warmup, refresh = 0, silent = 2)
total <- 0
n_fits <- 0
first_fits <- list()
all_fits <- list()                    # for the divergence count after the timed loops
for (p in names(sets)) {
  members <- sets[[p]]$outcomes
  t0 <- now()
  first <- do.call(brm, c(list(formula = yi | se(sei) ~ 1 + (1 | study), data = outcomes[[members[1]]],
                               prior = sets[[p]]$prior, seed = 1,
                               control = list(adapt_delta = as.numeric(opts$`adapt-delta`))), fit_args))
  first_s <- now() - t0
  first_fits[[p]] <- first
  all_fits[[length(all_fits) + 1]] <- first
  timing(sprintf("brms_first_fit_%s_s", p), first_s)
  t0 <- now()
  for (name in members[-1]) {
    all_fits[[length(all_fits) + 1]] <- update(first, newdata = outcomes[[name]], recompile = FALSE, refresh = 0,
                                               silent = 2, seed = 1)
  }
  refit_s <- now() - t0
  timing(sprintf("brms_refits_%s_s", p), refit_s)
  timing(sprintf("brms_refit_count_%s", p), length(members) - 1)
  timing(sprintf("brms_per_refit_%s_s", p), refit_s / max(1, length(members) - 1))
  total <- total + first_s + refit_s
  n_fits <- n_fits + length(members)
}

t0 <- now()
n_cum <- 0
for (name in names(outcomes)) {
  o <- outcomes[[name]]
  owner <- Filter(function(p) name %in% sets[[p]]$outcomes, names(sets))
  if (!isTRUE(o$cumulative[1]) || length(owner) == 0) next
  o <- o[order(o$year), ]
  for (yr in sort(unique(o$year))) {
    sub <- o[o$year <= yr, ]
    if (nrow(sub) < 2 || (nrow(sub) == nrow(o) && opts$`cumulative-full-step` == "no")) next
    all_fits[[length(all_fits) + 1]] <- update(first_fits[[owner[1]]], newdata = sub, recompile = FALSE,
                                               refresh = 0, silent = 2, seed = 1)
    n_cum <- n_cum + 1
  }
}
if (n_cum > 0) {
  cum_s <- now() - t0
  timing("brms_cumulative_fits", n_cum)
  timing("brms_cumulative_s", cum_s)
  total <- total + cum_s
  n_fits <- n_fits + n_cum
}
timing("brms_fits", n_fits)
timing("brms_priors", length(sets))
timing("brms_total_s", total)
timing("r_process_cpu_s", cpu())   # sampling workers may not be counted (see README)
divergent <- function(fit) { np <- nuts_params(fit); sum(np$Value[np$Parameter == "divergent__"]) }
timing("brms_fits_with_divergences", sum(vapply(all_fits, divergent, 0) > 0))
