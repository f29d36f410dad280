# Reference values for imrstats.meta.influence (influence, baujat, ranktest, trimfill) and MetaResult.regtest
# from R metafor (influence.rma.uni, baujat, ranktest, regtest, trimfill.rma.uni). Run from the repository root:
#   Rscript tests/validation/r/meta_influence.R      (R 4.2.2, metafor 3.8-1)
# Writes tests/validation/data/meta_influence_bcg.csv (dat.bcg with its log risk ratios, escalc(measure = "RR")),
# meta_influence_hackshaw.csv and meta_influence_reference.json; the test suite never runs R.
# Inputs: metafor's dat.bcg (Colditz et al. 1994), tests/validation/data/meta_influence_imrs_client.csv (yi / vi
# computed by imrstats from the curated published outcomes: meta_influence_make_data.py, so both sides pool
# identical numbers), the first 3 and 2 BCG trials (small-k edge cases) and metafor's dat.hackshaw1998 (Hackshaw
# et al. 1997, BMJ 315:980-988; 37 log odds ratios, metafor's own trim-and-fill example: 7 studies filled in, so
# the order and values of several filled-in studies are checked); and "ties": the first 8 BCG trials with their
# variances rounded up to 0.1 (meta_influence_ties.csv), so that ranktest() takes R's tie-corrected normal
# approximation instead of the exact distribution.
# Control: every iterative fit (REML Fisher scoring) runs to the optimum, control = list(threshold = 1e-12,
# maxiter = 1000); influence() and regtest() pass the model's control on to their refits, and trimfill() gets it
# through `...` (metafor 3.8 does not pass x$control on). trimfill() also gets the model's test and level through
# `...`, because imrstats refits the filled-in data with the model's own test (metafor 3.8 would use a Wald z).
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
dd <- "tests/validation/data"
ctrl <- list(threshold = 1e-12, maxiter = 1000)
pdf(NULL)  # baujat() draws its plot; nothing is written

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_out <- data.frame(trial = bcg$trial, author = bcg$author, year = bcg$year, tpos = bcg$tpos, tneg = bcg$tneg,
                      cpos = bcg$cpos, cneg = bcg$cneg, yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi))
write.csv(bcg_out, file.path(dd, "meta_influence_bcg.csv"), row.names = FALSE)
bcg_out <- read.csv(file.path(dd, "meta_influence_bcg.csv"))  # what the Python test reads, to the digit
hack <- dat.hackshaw1998
write.csv(data.frame(study = hack$study, author = hack$author, year = hack$year, yi = as.numeric(hack$yi),
                     vi = as.numeric(hack$vi)), file.path(dd, "meta_influence_hackshaw.csv"), row.names = FALSE)
hack <- read.csv(file.path(dd, "meta_influence_hackshaw.csv"), stringsAsFactors = FALSE)
ties <- data.frame(yi = bcg_out$yi[1:8], vi = ceiling(bcg_out$vi[1:8] * 10) / 10, slab = paste0("Trial ", 1:8))
write.csv(ties, file.path(dd, "meta_influence_ties.csv"), row.names = FALSE)
ties <- read.csv(file.path(dd, "meta_influence_ties.csv"), stringsAsFactors = FALSE)
imrs <- read.csv(file.path(dd, "meta_influence_imrs_client.csv"), stringsAsFactors = FALSE)

sets <- list(
  bcg = data.frame(yi = bcg_out$yi, vi = bcg_out$vi, slab = paste0("Trial ", bcg_out$trial)),
  imrs_client = data.frame(yi = imrs$yi, vi = imrs$vi, slab = imrs$study),
  bcg_k3 = data.frame(yi = bcg_out$yi[1:3], vi = bcg_out$vi[1:3], slab = paste0("Trial ", 1:3)),
  bcg_k2 = data.frame(yi = bcg_out$yi[1:2], vi = bcg_out$vi[1:2], slab = paste0("Trial ", 1:2)),
  hackshaw = data.frame(yi = hack$yi, vi = hack$vi, slab = paste(hack$author, hack$year)),
  ties = ties)

num <- function(x) { x <- as.numeric(x); x[!is.finite(x)] <- NA; x }
fit_record <- function(f) list(estimate = num(f$beta), se = num(f$se), tau2 = num(f$tau2), q = num(f$QE),
                               ci_low = num(f$ci.lb), ci_high = num(f$ci.ub), statistic = num(f$zval),
                               p = num(f$pval), k = f$k)

cases <- list()
for (ds in names(sets)) {
  d <- sets[[ds]]
  for (method in c("REML", "DL")) {
    for (test in c("z", "knha")) {
      f <- rma(yi, vi, data = d, slab = slab, method = method, test = test, control = ctrl)
      inf <- influence(f)
      rec <- list(dataset = ds, method = method, knha = (test == "knha"), k = f$k, rma = fit_record(f),
                  influence = list(rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits),
                                   cook_d = num(inf$inf$cook.d), cov_r = num(inf$inf$cov.r),
                                   tau2_del = num(inf$inf$tau2.del), qe_del = num(inf$inf$QE.del),
                                   hat = num(inf$inf$hat), weight = num(inf$inf$weight),
                                   dfbetas = num(inf$dfbs$intrcpt), influential = as.logical(inf$is.infl)))
      b <- baujat(f, symbol = "slab")
      rec$baujat <- list(x = num(b$x), y = num(b$y))
      rt <- suppressWarnings(ranktest(f))
      rec$ranktest <- list(tau = num(rt$tau), p = num(rt$pval))
      if (f$k >= 3) {
        eg <- regtest(f, model = "rma", predictor = "sei")
        rec$regtest <- list(statistic = num(eg$zval), p = num(eg$pval), slope = num(eg$fit$beta[2]),
                            slope_se = num(eg$fit$se[2]), limit = num(eg$est), limit_ci_low = num(eg$ci.lb),
                            limit_ci_high = num(eg$ci.ub))
      }
      tfs <- list()
      for (estimator in c("L0", "R0", "Q0")) {
        for (side in c("auto", "left", "right")) {
          args <- list(f, estimator = estimator, control = ctrl, test = test, level = 95)
          if (side != "auto") args$side <- side
          tf <- try(suppressWarnings(do.call(trimfill, args)), silent = TRUE)
          if (inherits(tf, "try-error")) {
            tfs[[length(tfs) + 1]] <- list(estimator = estimator, side_arg = side, ok = FALSE,
                                           error = conditionMessage(attr(tf, "condition")))
            next
          }
          tfs[[length(tfs) + 1]] <- list(estimator = estimator, side_arg = side, ok = TRUE, side = tf$side,
                                         k0 = tf$k0, se_k0 = num(tf$se.k0), p_k0 = num(tf$p.k0),
                                         yi = num(tf$yi), vi = num(tf$vi), fill = as.logical(tf$fill),
                                         fit = fit_record(tf))
        }
      }
      rec$trimfill <- tfs
      cases[[length(cases) + 1]] <- rec
    }
  }
}

out <- list(generated_by = "tests/validation/r/meta_influence.R",
            software = paste0("metafor ", packageVersion("metafor"), ", ", R.version.string),
            control = ctrl, cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           file.path(dd, "meta_influence_reference.json"))
cat("wrote", file.path(dd, "meta_influence_reference.json"), "\n")
