# R side of the trial-stage benchmark (benchmarks/run_all.py): the ITT analysis as an R user would run it.
#
# Usage: Rscript benchmarks/r/trial_mice_nlme.R INPUT.csv [M] [SEED] [OUTCOME ...]
#   INPUT.csv  the cleaned synthetic trial, one row per outcome x participant:
#              outcome, id, arm, site, sex, age, diagnosis, baseline, post, fu12 (written by run_all.py)
#   M          imputations (default 100); SEED mice seed (default 20190065); OUTCOMEs default: all in the file.
#
# Per outcome:
#   1. mice(m = M, method = "pmm", maxit = 5, seed) on arm, site, sex, age, diagnosis, baseline, post, fu12
#      (every incomplete column imputed, baseline included; id is not a predictor);
#   2. per imputation an MMRM by nlme::gls on the long post / fu12 data:
#      y ~ time + arm:time + baseline:time + site + sex + age + diagnosis,
#      correlation = corSymm(form = ~ visit | id) with an integer visit index (~ 1 | id would pair the wrong
#      visits for incomplete data), weights = varIdent(form = ~ 1 | time), method = "REML";
#   3. the IMR - TAU contrast at each visit (the arm:time coefficients) pooled with mice::pool.scalar
#      (Rubin's rules with the Barnard-Rubin small-sample df; complete-data df = participants - coefficients).
# Wall time (proc.time elapsed) per outcome, covering steps 1-3, and in total. Prints one JSON line, prefixed
# "RESULT ", that run_all.py parses; progress goes to stderr.
args <- commandArgs(trailingOnly = TRUE)
input <- if (length(args) >= 1) args[1] else "benchmarks/results/trial_input.csv"
m <- if (length(args) >= 2) as.integer(args[2]) else 100L
seed <- if (length(args) >= 3) as.integer(args[3]) else 20190065L
wanted <- if (length(args) >= 4) args[4:length(args)] else NULL

t_start <- proc.time()[["elapsed"]]
suppressPackageStartupMessages({
  library(mice)
  library(nlme)
  library(jsonlite)
})
load_s <- proc.time()[["elapsed"]] - t_start

d_all <- read.csv(input, stringsAsFactors = FALSE)
outcomes <- if (is.null(wanted)) unique(d_all$outcome) else wanted
predictors <- c("arm", "site", "sex", "age", "diagnosis", "baseline", "post", "fu12")

prepare <- function(d) {
  d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
  d$site <- factor(d$site)
  d$sex <- factor(d$sex)
  d$diagnosis <- factor(d$diagnosis)
  d
}

long_visits <- function(w) {
  n <- nrow(w)
  data.frame(
    id = rep(w$id, 2),
    visit = rep(1:2, each = n),
    time = factor(rep(c("post", "fu12"), each = n), levels = c("post", "fu12")),
    y = c(w$post, w$fu12),
    arm = rep(w$arm, 2), baseline = rep(w$baseline, 2), site = rep(w$site, 2),
    sex = rep(w$sex, 2), age = rep(w$age, 2), diagnosis = rep(w$diagnosis, 2)
  )
}

fit_one <- function(w) {
  long <- long_visits(w)
  fit <- gls(y ~ time + arm:time + baseline:time + site + sex + age + diagnosis, data = long,
             correlation = corSymm(form = ~ visit | id), weights = varIdent(form = ~ 1 | time),
             method = "REML", na.action = na.omit)
  b <- coef(fit)
  v <- vcov(fit)
  # With no arm main effect, arm:time is coded as one IMR indicator per visit: the contrast itself.
  names_c <- c(grep("^timepost:armIMR$|^armIMR:timepost$", names(b), value = TRUE),
               grep("^timefu12:armIMR$|^armIMR:timefu12$", names(b), value = TRUE))
  if (length(names_c) != 2) stop("arm:time coefficients not found: ", paste(names(b), collapse = ", "))
  list(est = unname(b[names_c]), var = unname(diag(v)[names_c]), p = length(b))
}

analyse_outcome <- function(key) {
  t0 <- proc.time()[["elapsed"]]
  d <- prepare(d_all[d_all$outcome == key, ])
  imp <- mice(d[, predictors], m = m, method = "pmm", maxit = 5, seed = seed, printFlag = FALSE)
  fits <- lapply(seq_len(m), function(i) {
    w <- complete(imp, i)
    w$id <- d$id
    fit_one(w)
  })
  pooled <- lapply(1:2, function(j) {
    q <- vapply(fits, function(f) f$est[j], numeric(1))
    u <- vapply(fits, function(f) f$var[j], numeric(1))
    pl <- pool.scalar(q, u, n = nrow(d), k = fits[[1]]$p)
    list(estimate = pl$qbar, se = sqrt(pl$t), df = pl$df, fmi = pl$fmi)
  })
  secs <- proc.time()[["elapsed"]] - t0
  message(sprintf("%-16s %6.1f s", key, secs))
  list(seconds = secs, n = nrow(d), missing = as.list(colSums(is.na(d[, c("baseline", "post", "fu12")]))),
       post = pooled[[1]], fu12 = pooled[[2]])
}

t_work <- proc.time()[["elapsed"]]
per_outcome <- setNames(lapply(outcomes, analyse_outcome), outcomes)
work_s <- proc.time()[["elapsed"]] - t_work
result <- list(
  m = m, seed = seed, maxit = 5L, method = "mice pmm + nlme::gls corSymm/varIdent REML + pool.scalar (Barnard-Rubin)",
  load_s = load_s, outcomes_s = work_s, total_s = proc.time()[["elapsed"]] - t_start,
  total_cpu_s = sum(proc.time()[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE),
  per_outcome_mean_s = work_s / length(outcomes),
  r_version = R.version.string,
  mice_version = as.character(packageVersion("mice")), nlme_version = as.character(packageVersion("nlme")),
  outcomes = per_outcome
)
cat("RESULT ", toJSON(result, auto_unbox = TRUE, digits = NA), "\n", sep = "")
