# Reference values for imrstats.meta.effect_sizes and imrstats.meta.random_effects from R metafor (rma.uni, predict,
# confint, leave1out, regtest, cumul, escalc). Run from the repository root:
#   Rscript tests/validation/r/metafor_meta.R > /tmp/metafor_meta.txt
# It prints Python dict entries  (dataset, method, knha, part, field, index): value,  that are pasted
# into tests/validation/test_meta_vs_r.py (the test suite never runs R).
# Inputs: tests/validation/data/meta_*.csv (provenance in their `source` column).
suppressMessages(library(metafor))
cat("# metafor", as.character(packageVersion("metafor")), "on", R.version.string, "\n")
dd <- "tests/validation/data/"
num <- function(x) ifelse(is.na(x), "nan", sprintf("%.15g", x))
emit <- function(ds, method, knha, part, field, values) {
  for (i in seq_along(values)) {
    cat(sprintf('("%s", "%s", %s, "%s", "%s", %d): %s,\n', ds, method,
                ifelse(knha, "True", "False"), part, field, i - 1L, num(values[i])))
  }
}

## escalc -------------------------------------------------------------------------------------
smd <- read.csv(paste0(dd, "meta_smd.csv")); homog <- read.csv(paste0(dd, "meta_homog.csv"))
k3 <- read.csv(paste0(dd, "meta_k3.csv")); bcg <- read.csv(paste0(dd, "meta_bcg.csv"))
rates <- read.csv(paste0(dd, "meta_rates.csv")); zero <- read.csv(paste0(dd, "meta_binary_zero.csv"))
es_means <- function(d, measure) escalc(measure, m1i = mean_imr, sd1i = sd_imr, n1i = n_imr,
                                        m2i = mean_tau, sd2i = sd_tau, n2i = n_tau, data = d)
es_bin <- function(d, measure) escalc(measure, ai = events_imr, n1i = n_imr, ci = events_tau,
                                      n2i = n_tau, data = d)
esc <- list(
  smd_SMD = es_means(smd, "SMD"), smd_MD = es_means(smd, "MD"),
  homog_SMD = es_means(homog, "SMD"), k3_SMD = es_means(k3, "SMD"),
  bcg_RR = es_bin(bcg, "RR"), bcg_OR = es_bin(bcg, "OR"),
  zero_RR = es_bin(zero, "RR"), zero_OR = es_bin(zero, "OR"),
  rates_PLO = escalc("PLO", xi = events, ni = n, data = rates))
cat("ESCALC = {\n")
for (nm in names(esc)) {
  parts <- strsplit(nm, "_")[[1]]
  emit(parts[1], parts[2], FALSE, "escalc", "yi", esc[[nm]]$yi)
  emit(parts[1], parts[2], FALSE, "escalc", "vi", esc[[nm]]$vi)
}
cat("}\n\n")

## rma and follow-ups -------------------------------------------------------------------------
sets <- list(smd = esc$smd_SMD, homog = esc$homog_SMD, k3 = esc$k3_SMD, bcg = esc$bcg_RR)
years <- list(smd = smd$year, homog = homog$year, k3 = k3$year, bcg = bcg$year)
cat("RMA = {\n")
for (ds in names(sets)) {
  for (method in c("REML", "ML", "DL", "PM", "EE")) {
    for (knha in c(FALSE, TRUE)) {
      test <- if (knha) "knha" else "z"
      fit <- suppressWarnings(rma(yi, vi, data = sets[[ds]], method = method, test = test))
      s <- function(part, field, v) emit(ds, method, knha, part, field, v)
      s("rma", "estimate", fit$beta); s("rma", "se", fit$se); s("rma", "statistic", fit$zval)
      s("rma", "p", fit$pval); s("rma", "ci_low", fit$ci.lb); s("rma", "ci_high", fit$ci.ub)
      s("rma", "tau2", fit$tau2); s("rma", "se_tau2", fit$se.tau2); s("rma", "i2", fit$I2)
      s("rma", "h2", fit$H2); s("rma", "q", fit$QE); s("rma", "q_p", fit$QEp)
      pr <- predict(fit)
      s("predict", "pi_low", pr$pi.lb); s("predict", "pi_high", pr$pi.ub)
      if (method != "EE") {
        ci <- confint(fit)$random
        s("confint", "ci_low", ci[, "ci.lb"]); s("confint", "ci_high", ci[, "ci.ub"])
      }
      # leave1out / cumul are loops of rma(): pinned for a subset of configurations to keep this file small
      loop_config <- (method == "REML") || (!knha && method %in% c("ML", "DL", "EE")) || (knha && method == "PM")
      if (loop_config) {
        l1 <- suppressWarnings(leave1out(fit))
        s("leave1out", "estimate", l1$estimate); s("leave1out", "se", l1$se); s("leave1out", "p", l1$pval)
        s("leave1out", "ci_low", l1$ci.lb); s("leave1out", "ci_high", l1$ci.ub)
        s("leave1out", "q", l1$Q); s("leave1out", "i2", l1$I2)
        if (method != "EE") s("leave1out", "tau2", l1$tau2)
      }
      rt <- suppressWarnings(regtest(fit))
      s("regtest", "statistic", rt$zval); s("regtest", "p", rt$pval)
      s("regtest", "slope", rt$fit$beta[2]); s("regtest", "slope_se", rt$fit$se[2])
      s("regtest", "limit", rt$est); s("regtest", "limit_ci_low", rt$ci.lb)
      s("regtest", "limit_ci_high", rt$ci.ub)
      if (loop_config) {
        cu <- suppressWarnings(cumul(fit, order = years[[ds]]))
        s("cumul", "estimate", cu$estimate); s("cumul", "se", cu$se); s("cumul", "p", cu$pvals)
        s("cumul", "ci_low", cu$ci.lb); s("cumul", "ci_high", cu$ci.ub); s("cumul", "q", cu$Q)
        if (method != "EE") s("cumul", "tau2", cu$tau2)
      }
    }
  }
}
cat("}\n")
