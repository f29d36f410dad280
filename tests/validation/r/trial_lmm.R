# Reference values for tests/validation/test_trial_lmm_vs_r.py (random-intercept secondary model).
# Data: tests/validation/data/trial_gaf_f.csv and trial_extra_panss_total.csv (outcome frames of the default
# synthetic trial). Run from the repository root:
#   Rscript tests/validation/r/trial_lmm.R
# Model (imrstats.trial.lmm.random_intercept_lmm): observed post / fu12 values of participants with an
# observed baseline; fixed effects 0 + time + time:arm + time:baseline + site + sex + age + diagnosis;
# random intercept per participant; REML (nlme::lme). Contrast IMR - TAU per visit by emmeans (containment df,
# i.e. nlme's between-within df), checked against the time:arm coefficient.
# The REML surface is flat in the variance components: nlme's optimisers stop within ~2e-6 (default nlminb)
# or ~6e-7 (optim, below) relative of the maximum, so the variance components are also given by lme4::lmer
# with tight nloptwrap tolerances ("lmer" line), which reaches the maximum to ~1e-8.
suppressPackageStartupMessages({library(nlme); library(emmeans); library(lme4)})
f <- function(x) sprintf("%.15g", x)
for (name in c("trial_gaf_f", "trial_extra_panss_total")) {
  d <- read.csv(file.path("tests/validation/data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  d <- d[!is.na(d$baseline), ]
  long <- rbind(data.frame(d[, c("id", "arm", "site", "sex", "age", "diagnosis", "baseline")], time = "post", y = d$post),
                data.frame(d[, c("id", "arm", "site", "sex", "age", "diagnosis", "baseline")], time = "fu12", y = d$fu12))
  long <- long[!is.na(long$y), ]
  long <- long[order(long$id, match(long$time, c("post", "fu12"))), ]
  long$time <- factor(long$time, levels = c("post", "fu12"))
  long$arm <- factor(long$arm, levels = c("TAU", "IMR"))
  for (v in c("site", "sex", "diagnosis")) long[[v]] <- factor(long[[v]])
  long$id <- factor(long$id)
  fit <- lme(y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis, random = ~ 1 | id,
             data = long, method = "REML", control = lmeControl(opt = "optim", msMaxIter = 1000, tolerance = 1e-12,
                                                                 msTol = 1e-14, niterEM = 100))
  vc <- c(as.numeric(getVarCov(fit)), fit$sigma^2)
  cat(name, "n_obs", nrow(long), "n_id", nlevels(droplevels(long$id)), "\n")
  cat(name, "tau2", f(vc[1]), "sigma2", f(vc[2]), "reml_loglik", f(as.numeric(logLik(fit))), "\n")
  cat(name, "fixdf", paste(names(fit$fixDF$X), fit$fixDF$X, collapse = " "), "\n")
  cat(name, "coef", paste(names(fixef(fit)), f(fixef(fit)), collapse = " "), "\n")
  cat(name, "se", paste(f(sqrt(diag(vcov(fit)))), collapse = " "), "\n")
  m <- lmer(y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis + (1 | id), data = long,
            REML = TRUE, control = lmerControl(optimizer = "nloptwrap", optCtrl = list(
              xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 1e-14, ftol_rel = 1e-15, maxeval = 10000)))
  vl <- as.data.frame(VarCorr(m))$vcov
  cat(name, "lmer tau2", f(vl[1]), "sigma2", f(vl[2]), "reml_loglik", f(as.numeric(logLik(m))), "\n")
  cat(name, "lmer coef", paste(names(fixef(m)), f(fixef(m)), collapse = " "), "\n")
  em <- emmeans(fit, ~ arm | time, nesting = NULL)
  ct <- as.data.frame(summary(contrast(em, list(IMR_minus_TAU = c(-1, 1))), infer = c(TRUE, TRUE)))
  for (i in seq_len(nrow(ct))) {
    cat(name, "contrast", as.character(ct$time[i]), "estimate", f(ct$estimate[i]), "se", f(ct$SE[i]),
        "df", f(ct$df[i]), "lower", f(ct$lower.CL[i]), "upper", f(ct$upper.CL[i]), "t", f(ct$t.ratio[i]),
        "p", f(ct$p.value[i]), "\n")
  }
}
