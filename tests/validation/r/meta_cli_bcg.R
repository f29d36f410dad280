# Reference values for `imrstats meta` on a 2x2 table (the BCG vaccine trials) and for the risk difference
# (escalc measure "RD"), from R metafor. Run from the repository root:
#   Rscript tests/validation/r/meta_cli_bcg.R
# Writes
#   data/examples/meta/bcg.csv                         metafor's dat.bcg (Colditz et al. 1994, via metadat),
#                                                      as imrstats meta reads it (study, year, ai, bi, ci, di)
#   tests/validation/data/meta_cli_bcg_reference.json  the numbers (the test suite never runs R)
# Fits: rma(measure = "RR") with method REML and test = "knha" (the CLI's defaults: config meta.method and
# meta.knha) and with test = "z" (--no-knha), each with predict, confint (Q-profile), leave1out,
# cumul (by year) and regtest (Egger: model "rma", predictor "sei"). REML tau^2 is iterative: for the fit,
# its prediction interval, Q-profile CIs and Egger's test metafor's control is tightened (threshold 1e-12,
# maxiter 1000) so the reference sits at the optimum, which the Python fit (metafor's default threshold
# 1e-5) must reach to 1e-6 relative. The 13 leave-one-out and 13 cumulative refits are compared with
# metafor's default control instead (the same Fisher scoring iterates, stopping at the same step): at the
# optimum some of them differ from a threshold-1e-5 fit by up to 3e-6 relative.
# escalc RD: dat.bcg and tests/validation/data/meta_binary_zero.csv (zero cells; metafor's defaults
# add = 1/2, to = "only0", vtype = "LS").
suppressMessages(library(metafor))
suppressMessages(library(jsonlite))
dat.bcg <- metadat::dat.bcg  # metafor 3.8 ships its data sets in metadat
bcg <- data.frame(study = dat.bcg$author, year = dat.bcg$year, ai = dat.bcg$tpos, bi = dat.bcg$tneg,
                  ci = dat.bcg$cpos, di = dat.bcg$cneg, ablat = dat.bcg$ablat, alloc = dat.bcg$alloc)
write.csv(bcg, "data/examples/meta/bcg.csv", row.names = FALSE)
bcg <- read.csv("data/examples/meta/bcg.csv", stringsAsFactors = FALSE)  # exactly the file the test reads
label <- ifelse(endsWith(bcg$study, as.character(bcg$year)), bcg$study, paste0(bcg$study, " (", bcg$year, ")"))
control <- list(threshold = 1e-12, maxiter = 1000)

es <- escalc("RR", ai = ai, bi = bi, ci = ci, di = di, data = bcg, slab = label)
fit_case <- function(test) {
  fit <- rma(yi, vi, data = es, method = "REML", test = test, control = control)
  pred <- predict(fit)
  ci <- confint(fit)$random
  default <- rma(yi, vi, data = es, method = "REML", test = test)  # metafor's default control
  loo <- leave1out(default)
  cum <- cumul(default, order = bcg$year)
  eg <- regtest(fit, model = "rma", predictor = "sei")
  egfit <- eg$fit
  list(
    test = test,
    refits_control = "metafor default (threshold 1e-5, maxiter 100)",
    rma = list(estimate = as.numeric(fit$beta), se = fit$se, statistic = fit$zval, p = fit$pval,
               ci_low = fit$ci.lb, ci_high = fit$ci.ub, tau2 = fit$tau2, se_tau2 = fit$se.tau2, i2 = fit$I2,
               h2 = fit$H2, q = fit$QE, q_p = fit$QEp, k = fit$k),
    prediction = list(pi_low = pred$pi.lb, pi_high = pred$pi.ub,
                      exp_estimate = exp(pred$pred), exp_ci_low = exp(pred$ci.lb), exp_ci_high = exp(pred$ci.ub),
                      exp_pi_low = exp(pred$pi.lb), exp_pi_high = exp(pred$pi.ub)),
    confint = list(quantity = c("tau^2", "tau", "I^2 (%)", "H^2"), estimate = unname(ci[, "estimate"]),
                   ci_low = unname(ci[, "ci.lb"]), ci_high = unname(ci[, "ci.ub"])),
    leave_one_out = list(omitted = as.character(loo$slab), estimate = loo$estimate, se = loo$se, p = loo$pval,
                         ci_low = loo$ci.lb, ci_high = loo$ci.ub, tau2 = loo$tau2, i2 = loo$I2, q = loo$Q),
    cumulative = list(added = as.character(cum$slab), estimate = cum$estimate, se = cum$se, p = cum$pval,
                      ci_low = cum$ci.lb, ci_high = cum$ci.ub),
    egger = list(slope = as.numeric(egfit$beta[2]), slope_se = egfit$se[2], statistic = eg$zval, p = eg$pval,
                 limit = as.numeric(egfit$beta[1]), limit_se = egfit$se[1])
  )
}
zero <- read.csv("tests/validation/data/meta_binary_zero.csv", stringsAsFactors = FALSE)
rd_bcg <- escalc("RD", ai = ai, bi = bi, ci = ci, di = di, data = bcg)
rd_zero <- escalc("RD", ai = events_imr, n1i = n_imr, ci = events_tau, n2i = n_tau, data = zero)
out <- list(
  generated_by = "tests/validation/r/meta_cli_bcg.R",
  software = paste0("metafor ", packageVersion("metafor"), ", ", R.version.string),
  control = control,
  data = "data/examples/meta/bcg.csv (metafor dat.bcg: Colditz et al. 1994, JAMA 271:698)",
  escalc = list(
    bcg_RR = list(yi = as.numeric(es$yi), vi = as.numeric(es$vi)),
    bcg_RD = list(yi = as.numeric(rd_bcg$yi), vi = as.numeric(rd_bcg$vi)),
    zero_RD = list(yi = as.numeric(rd_zero$yi), vi = as.numeric(rd_zero$vi))
  ),
  fits = list(knha = fit_case("knha"), z = fit_case("z"))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/validation/data/meta_cli_bcg_reference.json")
