# Reference for tests/meta/test_bayes_models.py: metafor's mixed-effects meta-regression of the BCG trials
# (dat.bcg, Colditz et al. 1994) log risk ratio on absolute latitude, REML; and the data set it is fitted to.
#   Rscript tests/validation/r/meta_regression.R   (R 4.2.2, metafor 3.8-1)
# Writes tests/validation/data/meta_regression_bcg.csv (trial, year, ablat, yi, vi) and prints the estimates
# pinned in the test.
suppressPackageStartupMessages(library(metafor))
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
out <- data.frame(trial = dat$trial, author = dat$author, year = dat$year, ablat = dat$ablat,
                  yi = as.numeric(dat$yi), vi = as.numeric(dat$vi))
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
write.csv(out, file.path(here, "..", "data", "meta_regression_bcg.csv"), row.names = FALSE)
fit <- rma(yi, vi, mods = ~ ablat, data = dat, method = "REML")
centred <- rma(yi, vi, mods = ~ I(ablat - mean(ablat)), data = dat, method = "REML")
cat(sprintf("b0 %.15g se %.15g\nb1 %.15g se %.15g\ntau2 %.15g\nb0_centred %.15g se %.15g\nmean_ablat %.15g\n",
            coef(fit)[1], fit$se[1], coef(fit)[2], fit$se[2], fit$tau2,
            coef(centred)[1], centred$se[1], mean(dat$ablat)))
