# Reference values for imrstats.meta.selection (selmodel_stepfun, selmodel_sensitivity) from R metafor's selmodel.
# Run from the repository root:
#   Rscript tests/validation/r/meta_selection.R
# Writes tests/validation/data/meta_selection_data.csv (dat.bcg log risk ratios, escalc(measure = "RR",
# ai = tpos, bi = tneg, ci = cpos, di = cneg); dat.hackshaw1998 log odds ratios as given) and
# tests/validation/data/meta_selection_reference.json.
#
# Models: rma(yi, vi, method = "ML", control = list(threshold = 1e-12, maxiter = 1000)) (selmodel refits any other
# method by ML; the tight threshold puts the comparison model's logLik at its optimum), then
# selmodel(fit, type = "stepfun", steps = ..., alternative = ...): BCG with alternative = "less" (negative log risk
# ratios favour the vaccine; with "greater" no BCG p-value falls below 0.025 and the weight runs to its bound 100),
# hackshaw with the default "greater"; steps c(0.025, 1) and c(0.025, 0.10, 1) on both, plus c(0.05, 0.5, 1)
# two-sided on BCG. Sensitivity (Vevea & Woods 2005, Table 1 weights as in metafor's selmodel documentation):
# selmodel(fit, type = "stepfun", steps = tab$steps, delta = <weights>) for the four patterns, on both data sets.
# The optimiser: selmodel's default (optim BFGS, reltol 1e-8, finite-difference gradients with ndeps 1e-3) stops
# short of the optimum by up to ~1e-5 relative in the weights (recorded as "default_optim"); tighter optim
# tolerances and nlminb with rel.tol below its default end in errors; nlminb with its default tolerances
# gets to ~1e-6 (recorded as "nlminb"). The reference is therefore taken at the optimum itself: from the nlminb
# fit, Newton steps on metafor's own log-likelihood (.selmodel.ll.stepfun on the natural scale; numDeriv
# gradient with Richardson r = 6 and Hessian) until the step is < 1e-10 relative, then selmodel run again with
# nlminb started at that point (beta.init, tau2.init, delta.init; it stays within 1e-8, checked), so that the
# SEs (metafor's numDeriv Hessian), CIs and likelihood-ratio tests are metafor's own at the optimum. The JSON
# records the score there ("score", ~0).
suppressPackageStartupMessages({library(metafor); library(jsonlite); library(numDeriv)})
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
data_dir <- file.path(here, "..", "data")

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
hack <- dat.hackshaw1998
dat <- rbind(data.frame(dataset = "bcg", study = paste(bcg$author, bcg$year), yi = as.numeric(bcg$yi),
                        vi = as.numeric(bcg$vi)),
             data.frame(dataset = "hackshaw1998", study = paste(hack$author, hack$year), yi = as.numeric(hack$yi),
                        vi = as.numeric(hack$vi)))
write.csv(dat, file.path(data_dir, "meta_selection_data.csv"), row.names = FALSE)
dat <- read.csv(file.path(data_dir, "meta_selection_data.csv"), stringsAsFactors = FALSE)

ml_fit <- function(name) {
  d <- dat[dat$dataset == name, ]
  rma(yi, vi, data = d, method = "ML", control = list(threshold = 1e-12, maxiter = 1000))
}
NLMINB <- list(optimizer = "nlminb")

loglik_fun <- function(s) {
  # metafor's own stepfun log-likelihood (natural scale) as a function of the free (beta, tau2, deltas) of fit s
  deltas <- length(s$delta)
  delta_val <- ifelse(s$delta.fix, s$delta, NA)
  free <- c(TRUE, TRUE, !s$delta.fix)
  function(par_free) {
    par <- c(s$beta, s$tau2, s$delta)
    par[free] <- par_free
    -metafor:::.selmodel.ll.stepfun(par, yi = s$yi, vi = s$vi, X = s$X, preci = rep(1, s$k), k = s$k, pX = 1,
      pvals = s$pvals, deltas = deltas, delta.val = delta_val, delta.transf = FALSE, mapfun = rep(NA, deltas),
      delta.min = s$delta.min, delta.max = s$delta.max, tau2.val = NA, tau2.transf = FALSE, tau2.max = Inf,
      beta.val = NA, wi.fun = s$wi.fun, steps = s$steps, pgrp = s$pgrp, alternative = s$alternative,
      pval.min = s$pval.min, intCtrl = list(), verbose = FALSE, digits = s$digits)
  }
}

at_optimum <- function(fit, ...) {
  # selmodel with nlminb, then Newton steps on metafor's log-likelihood (numDeriv gradient, Richardson r = 6, and
  # Hessian) to the optimum, then selmodel again started there (nlminb stays put) for metafor's SEs and tests
  s <- selmodel(fit, type = "stepfun", ..., control = NLMINB)
  free <- c(TRUE, TRUE, !s$delta.fix)
  ll <- loglik_fun(s)
  x <- c(s$beta, s$tau2, s$delta)[free]
  for (it in 1:5) {
    step <- -solve(hessian(ll, x), grad(ll, x, method.args = list(r = 6)))
    x <- x + step
    if (max(abs(step) / abs(x)) < 1e-10) break
  }
  par <- c(s$beta, s$tau2, s$delta)
  par[free] <- x
  s2 <- selmodel(fit, type = "stepfun", ..., control = c(NLMINB, list(beta.init = par[1], tau2.init = par[2],
                                                                      delta.init = par[-(1:2)])))
  moved <- max(abs(c(s2$beta, s2$tau2, s2$delta) - par) / pmax(abs(par), 1e-8))
  stopifnot(moved < 1e-8)
  list(fit = s2, nlminb = s, score = grad(loglik_fun(s2), c(s2$beta, s2$tau2, s2$delta)[free],
                                          method.args = list(r = 6)))
}

record <- function(s) list(
  beta = as.numeric(s$beta), se = s$se, zval = s$zval, pval = s$pval, ci_lb = s$ci.lb, ci_ub = s$ci.ub,
  tau2 = s$tau2, se_tau2 = s$se.tau2, ci_lb_tau2 = s$ci.lb.tau2, ci_ub_tau2 = s$ci.ub.tau2,
  delta = s$delta, se_delta = s$se.delta, zval_delta = s$zval.delta, pval_delta = s$pval.delta,
  ci_lb_delta = s$ci.lb.delta, ci_ub_delta = s$ci.ub.delta, delta_fixed = s$delta.fix,
  k_interval = s$ptable$k, ll = s$ll, ll0 = s$ll0, LRT = s$LRT, LRTdf = s$LRTdf, LRTp = s$LRTp,
  LRT_tau2 = s$LRT.tau2, LRTp_tau2 = s$LRTp.tau2)

cases <- list()
specs <- list(list("bcg", "less", c(0.025, 1)), list("bcg", "less", c(0.025, 0.10, 1)),
              list("bcg", "two.sided", c(0.05, 0.5, 1)),
              list("hackshaw1998", "greater", c(0.025, 1)), list("hackshaw1998", "greater", c(0.025, 0.10, 1)))
for (sp in specs) {
  fit <- ml_fit(sp[[1]])
  opt <- at_optimum(fit, steps = sp[[3]], alternative = sp[[2]])
  s <- opt$fit
  s_default <- selmodel(fit, type = "stepfun", steps = sp[[3]], alternative = sp[[2]])
  cases[[length(cases) + 1]] <- c(list(dataset = sp[[1]], alternative = sp[[2]], steps = sp[[3]]), record(s),
    list(score = opt$score, default_optim = list(beta = as.numeric(s_default$beta), tau2 = s_default$tau2,
                                                 delta = s_default$delta, ll = s_default$ll),
         nlminb = list(beta = as.numeric(opt$nlminb$beta), tau2 = opt$nlminb$tau2, delta = opt$nlminb$delta),
         unadjusted = list(beta = as.numeric(fit$beta), se = fit$se, tau2 = fit$tau2)))
}

tab <- data.frame(
  steps = c(0.005, 0.01, 0.05, 0.10, 0.25, 0.35, 0.50, 0.65, 0.75, 0.90, 0.95, 0.99, 0.995, 1),
  delta.mod.1 = c(1, 0.99, 0.95, 0.80, 0.75, 0.65, 0.60, 0.55, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50),
  delta.sev.1 = c(1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.40, 0.35, 0.30, 0.25, 0.10, 0.10, 0.10, 0.10),
  delta.mod.2 = c(1, 0.99, 0.95, 0.90, 0.80, 0.75, 0.60, 0.60, 0.75, 0.80, 0.90, 0.95, 0.99, 1.00),
  delta.sev.2 = c(1, 0.99, 0.90, 0.75, 0.60, 0.50, 0.25, 0.25, 0.50, 0.60, 0.75, 0.90, 0.99, 1.00))
patterns <- c(delta.mod.1 = "moderate one-tailed", delta.sev.1 = "severe one-tailed",
              delta.mod.2 = "moderate two-tailed", delta.sev.2 = "severe two-tailed")
sensitivity <- list()
for (sp in list(list("bcg", "less"), list("hackshaw1998", "greater"))) {
  fit <- ml_fit(sp[[1]])
  for (col in names(patterns)) {
    opt <- at_optimum(fit, steps = tab$steps, delta = tab[[col]], alternative = sp[[2]])
    s <- opt$fit
    sensitivity[[length(sensitivity) + 1]] <- list(
      dataset = sp[[1]], alternative = sp[[2]], pattern = unname(patterns[col]), steps = tab$steps,
      weights = tab[[col]], beta = as.numeric(s$beta), se = s$se, ci_lb = s$ci.lb, ci_ub = s$ci.ub, tau2 = s$tau2,
      se_tau2 = s$se.tau2, ll = s$ll, score = opt$score,
      unadjusted = list(beta = as.numeric(fit$beta), se = fit$se, tau2 = fit$tau2))
  }
}

out <- list(generated_by = "tests/validation/r/meta_selection.R",
            versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor"))),
            cases = cases, sensitivity = sensitivity)
write_json(out, file.path(data_dir, "meta_selection_reference.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE,
           na = "null")
for (cs in cases) cat(sprintf("%-13s %-9s %-16s mu = %.10g tau2 = %.10g delta = %s | default optim delta = %s | score %s\n",
                              cs$dataset, cs$alternative, paste(cs$steps, collapse = ","), cs$beta, cs$tau2,
                              paste(signif(cs$delta, 10), collapse = ","),
                              paste(signif(cs$default_optim$delta, 10), collapse = ","),
                              paste(signif(cs$score, 2), collapse = ",")))
for (cs in sensitivity) cat(sprintf("%-13s %-20s mu = %.10g tau2 = %.10g score %s\n", cs$dataset, cs$pattern, cs$beta,
                                    cs$tau2, paste(signif(cs$score, 2), collapse = ",")))
