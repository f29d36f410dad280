# Reference values for imrstats.meta.multilevel (rma_mv, robust_cr2) from R metafor (rma.mv) and clubSandwich.
# Run from the repository root:
#   Rscript tests/validation/r/meta_multilevel.R
# Writes tests/validation/data/meta_multilevel_konstantopoulos.csv (metafor's dat.konstantopoulos2011, from the
# metadat package: 56 schools in 11 districts) and tests/validation/data/meta_multilevel_reference.json.
# Reads tests/validation/data/meta_multilevel_imrs.csv (the curated IMRS effects, several per study; written by
# tests/validation/data/meta_multilevel_make_data.py with the project's own effect-size conversion).
#
# Model: rma.mv(yi, vi, mods, random = ~ 1 | study/effect, method = REML or ML), test = "z"; CR2 by study:
# clubSandwich::coef_test(fit, vcov = "CR2", cluster = study) (Satterthwaite df) and conf_int(...).
# The optimum: rma.mv maximises on log(sigma^2) with nlminb and finite-difference gradients; its default
# tolerance (rel.tol 1e-10 on the objective) stops short of the optimum by 1e-8 to 1e-5 relative in sigma^2
# (1e-5 for the IMRS ML model with the rater moderator), and tighter tolerances (rel.tol 1e-12 .. 1e-15) end in
# nlminb's "false convergence" error, as the finite-difference gradient is noise at that level. So the
# reference is taken at the optimum itself: starting from the default fit, Newton steps on the interior
# components with numDeriv's Richardson gradient and Hessian of logLik over refits with sigma2 fixed (moderators
# centred there, which leaves the likelihood in sigma^2 unchanged and keeps its digits), until the step is
# < 1e-10 relative (at most 5 steps); a component that nlminb leaves at a tiny value (< 1e-6 x the largest) is
# set to 0 where the one-sided score at 0 is negative (its optimum is on the boundary). All reported numbers (beta, SEs,
# Q tests, logLik, CR2) come from rma.mv refitted with sigma2 fixed at that optimum; the JSON records the
# default fit ("default_control"), the score at the optimum ("score", interior components ~ 0) and at the
# boundary ("score_at_zero"). AIC/BIC/AICc are the default fit's (its parameter count; logLik equal to 1e-12).
suppressPackageStartupMessages({library(metafor); library(clubSandwich); library(jsonlite); library(numDeriv)})
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
data_dir <- file.path(here, "..", "data")

kon <- dat.konstantopoulos2011
write.csv(data.frame(district = kon$district, school = kon$school, study = kon$study, year = kon$year,
                     yi = as.numeric(kon$yi), vi = as.numeric(kon$vi)),
          file.path(data_dir, "meta_multilevel_konstantopoulos.csv"), row.names = FALSE)
kon <- read.csv(file.path(data_dir, "meta_multilevel_konstantopoulos.csv"))
imrs <- read.csv(file.path(data_dir, "meta_multilevel_imrs.csv"), stringsAsFactors = FALSE)

fit_case <- function(name, csv, dat, study, effect, mods, method) {
  dat$study_ <- dat[[study]]
  dat$effect_ <- dat[[effect]]
  form <- if (length(mods)) reformulate(mods) else ~ 1
  default <- rma.mv(yi, vi, mods = form, random = ~ 1 | study_/effect_, data = dat, method = method)
  fixed_fit <- function(s) rma.mv(yi, vi, mods = form, random = ~ 1 | study_/effect_, data = dat, method = method,
                                  sigma2 = s)
  # the likelihood for the Newton steps: moderators centred (the (restricted) likelihood in sigma^2 is invariant to
  # centring, and metafor's REML determinant terms lose ~5 digits with an uncentred year near 2000)
  centred <- dat
  for (m in mods) centred[[m]] <- centred[[m]] - mean(centred[[m]])
  ll_at <- function(s) as.numeric(logLik(rma.mv(yi, vi, mods = form, random = ~ 1 | study_/effect_, data = centred,
                                                method = method, sigma2 = s)))
  s <- default$sigma2
  interior <- s > 1e-6 * max(s)
  s[!interior] <- 0
  ll_free <- function(x) { t <- s; t[interior] <- x; ll_at(t) }
  for (it in 1:5) {
    g <- grad(ll_free, s[interior], method.args = list(r = 6))
    H <- hessian(ll_free, s[interior])
    step <- -solve(H, g)
    s[interior] <- s[interior] + step
    if (max(abs(step) / s[interior]) < 1e-10) break
  }
  score <- rep(NA_real_, length(s))
  score[interior] <- grad(ll_free, s[interior], method.args = list(r = 6))
  score_at_zero <- rep(NA_real_, length(s))
  for (j in which(!interior)) {
    h <- 1e-8 * max(s)
    t <- s; t[j] <- h
    score_at_zero[j] <- (ll_at(t) - ll_at(s)) / h
    stopifnot(score_at_zero[j] < 0)
  }
  fit <- fixed_fit(s)
  fs <- default$fit.stats[, if (method == "REML") "REML" else "ML"]
  ct <- coef_test(fit, vcov = "CR2", cluster = dat$study_, test = "Satterthwaite")
  ci <- conf_int(fit, vcov = "CR2", cluster = dat$study_, level = 0.95)
  V <- as.matrix(vcovCR(fit, type = "CR2", cluster = dat$study_))
  list(
    dataset = name, csv = csv, study = study, effect = effect, mods = I(mods), method = method,
    k = fit$k, n_levels = fit$s.nlevels, beta = as.numeric(fit$beta), se = fit$se, zval = fit$zval,
    pval = fit$pval, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub, sigma2 = s, QE = fit$QE, QEp = fit$QEp,
    QM = if (length(mods)) fit$QM else NA, QMp = if (length(mods)) fit$QMp else NA,
    logLik = as.numeric(logLik(fit)), AIC = fs[3], BIC = fs[4], AICc = fs[5], newton_steps = it,
    score = score, score_at_zero = score_at_zero,
    default_control = list(sigma2 = default$sigma2, beta = as.numeric(default$beta), se = default$se,
                           logLik = fs[1]),
    cr2 = list(beta = ct$beta, se = ct$SE, tstat = ct$tstat, df = ct$df_Satt, p = ct$p_Satt,
               ci_lb = ci$CI_L, ci_ub = ci$CI_U, vcov = unname(V)))
}

cases <- list()
for (method in c("REML", "ML")) {
  for (mods in list(character(0), "year"))
    cases[[length(cases) + 1]] <- fit_case("konstantopoulos2011", "meta_multilevel_konstantopoulos.csv", kon,
                                           "district", "school", mods, method)
  for (mods in list(character(0), "clinician"))
    cases[[length(cases) + 1]] <- fit_case("imrs", "meta_multilevel_imrs.csv", imrs, "study", "effect", mods, method)
}
out <- list(
  generated_by = "tests/validation/r/meta_multilevel.R",
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  clubSandwich = as.character(packageVersion("clubSandwich"))),
  cases = cases)
write_json(out, file.path(data_dir, "meta_multilevel_reference.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE,
           na = "null")
for (cs in cases) cat(sprintf("%-20s %-4s %-9s sigma2 = %s  score = %s  (default fit: sigma2 = %s)\n", cs$dataset,
                              cs$method, paste(cs$mods, collapse = "+"), paste(signif(cs$sigma2, 10), collapse = ", "),
                              paste(signif(cs$score, 3), collapse = ", "),
                              paste(signif(cs$default_control$sigma2, 10), collapse = ", ")))
