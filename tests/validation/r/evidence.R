# Reference values for imrstats.evidence.stage (pinned in tests/validation/test_evidence_vs_r.py).
#
# 1. The trial's conversion to Hedges' g: complete case by metafor::escalc(measure = "SMD") on the observed
#    arm summaries; ITT by g = J(m) sign MD / s, v = (SE_MD / s)^2 + g^2 / (2 (n1 + n2)) with metafor's own
#    Hedges correction (metafor:::.cmicalc) and s the pooled within-arm SD at the visit (or at baseline).
# 2. REML + Knapp-Hartung without / with the trial (metafor::rma), the prediction interval and where the
#    trial's g falls in the t(k - 1) prediction distribution (with and without its own sampling variance).
# 3. The exact Bayesian posterior predictive percentile (no sampling): mu, theta integrated out
#    analytically, numerical integration over log(tau) (same quadrature as tests/validation/r/bayes.R),
#    prior mu ~ N(0, 1), tau: Rhodes et al. 2015 log-t on tau^2 (location -3.85, scale 1.93, 5 df).
#
# Run from the repository root:  Rscript tests/validation/r/evidence.R
suppressPackageStartupMessages(library(metafor))

here <- "tests/validation/data"
pub <- read.csv(file.path(here, "evidence_published.csv"))
itt <- read.csv(file.path(here, "evidence_trial_itt.csv"))
desc <- read.csv(file.path(here, "evidence_trial_descriptives.csv"))

lp_logt_tau2 <- function(loc, scale, nu = 5) function(s) dt((2 * s - loc) / scale, nu, log = TRUE) - log(scale) + log(2)
conditional <- function(s, y, v, m0, s0) {
  tau2 <- exp(2 * s)
  w <- 1 / (v + tau2)
  P <- 1 / s0^2 + sum(w)
  mh <- (m0 / s0^2 + sum(w * y)) / P
  loglik <- -0.5 * sum(log(v + tau2)) - 0.5 * log(P) - 0.5 * (sum(w * y^2) + m0^2 / s0^2 - P * mh^2)
  list(tau2 = tau2, mh = mh, V = 1 / P, loglik = loglik)
}
posterior_mean <- function(y, v, lprior, g, m0 = 0, s0 = 1, lower = -20, upper = 8) {
  grid <- seq(lower, upper, length.out = 4001)
  shift <- max(sapply(grid, function(s) conditional(s, y, v, m0, s0)$loglik + lprior(s)))
  function(h) {
    f <- function(ss) sapply(ss, function(s) {
      cc <- conditional(s, y, v, m0, s0)
      exp(cc$loglik + lprior(s) - shift) * h(s, cc)
    })
    integrate(f, lower, upper, subdivisions = 5000L, rel.tol = 1e-11, abs.tol = 0)$value
  }
}
exact <- function(y, v, g = NA, vg = NA) {
  expect <- posterior_mean(y, v, lp_logt_tau2(-3.85, 1.93, 5))
  Z <- expect(function(s, cc) 1)
  out <- list(mu_mean = expect(function(s, cc) cc$mh) / Z)
  if (!is.na(g)) {
    out$pct_true <- expect(function(s, cc) pnorm((g - cc$mh) / sqrt(cc$V + cc$tau2))) / Z
    out$pct_observed <- expect(function(s, cc) pnorm((g - cc$mh) / sqrt(cc$V + cc$tau2 + vg))) / Z
  }
  out
}
show <- function(case, res) for (nm in names(res)) cat(sprintf("%s %s %s\n", case, nm, format(res[[nm]], digits = 15)))

pooled_sd <- function(d) sqrt(((d$n[1] - 1) * d$sd[1]^2 + (d$n[2] - 1) * d$sd[2]^2) / (sum(d$n) - 2))
arms <- function(outcome, tp) {
  d <- desc[desc$outcome == outcome & desc$timepoint == tp, ]
  d[match(c("IMR", "TAU"), d$arm), ]
}
convert <- function(outcome, sign, sd_at = "fu12") {
  d <- arms(outcome, "fu12")
  ds <- arms(outcome, sd_at)
  s <- pooled_sd(ds)
  m <- sum(ds$n) - 2
  J <- metafor:::.cmicalc(m)
  r <- itt[itt$outcome == outcome & itt$timepoint == "fu12", ]
  g_itt <- J * sign * r$estimate / s
  v_itt <- (r$se / s)^2 + g_itt^2 / (2 * sum(ds$n))
  cc <- escalc("SMD", m1i = d$mean[1], sd1i = d$sd[1], n1i = d$n[1], m2i = d$mean[2], sd2i = d$sd[2], n2i = d$n[2])
  if (sd_at == "fu12") {
    g_cc <- sign * cc$yi[1]; v_cc <- cc$vi[1]
  } else {
    g_cc <- J * sign * (d$mean[1] - d$mean[2]) / s
    v_cc <- pooled_sd(d)^2 * (1 / d$n[1] + 1 / d$n[2]) / s^2 + g_cc^2 / (2 * sum(ds$n))
  }
  list(s = s, J = J, g_itt = g_itt, v_itt = v_itt, g_cc = g_cc, v_cc = v_cc,
       md_cc = d$mean[1] - d$mean[2], md_se_cc = sqrt(d$sd[1]^2 / d$n[1] + d$sd[2]^2 / d$n[2]))
}

freq <- function(y, v) {
  fit <- rma(y, v, method = "REML", test = "knha")
  pr <- predict(fit)
  list(fit = fit, est = as.numeric(fit$b), se = fit$se, ci_low = fit$ci.lb, ci_high = fit$ci.ub, tau2 = fit$tau2,
       pi_low = pr$pi.lb, pi_high = pr$pi.ub)
}
percentiles <- function(f, g, vg) {
  k <- f$fit$k
  list(pct_true = pt((g - f$est) / sqrt(f$se^2 + f$tau2), k - 1),
       pct_observed = pt((g - f$est) / sqrt(f$se^2 + f$tau2 + vg), k - 1))
}

cases <- list(imrs_client = list(outcome = "imrs_client", sign = 1), symptoms = list(outcome = "panss_total", sign = -1))
for (label in names(cases)) {
  cs <- cases[[label]]
  conv <- convert(cs$outcome, cs$sign)
  show(paste0(label, "_conversion"), conv)
  p <- pub[pub$outcome_label == label, ]
  without <- freq(p$yi, p$vi)
  show(paste0(label, "_without"), without[-1])
  show(paste0(label, "_bayes_without"), exact(p$yi, p$vi))
  for (analysis in c("itt", "cc")) {
    g <- conv[[paste0("g_", analysis)]]; vg <- conv[[paste0("v_", analysis)]]
    with <- freq(c(p$yi, g), c(p$vi, vg))
    show(paste0(label, "_", analysis, "_with"), with[-1])
    show(paste0(label, "_", analysis, "_freq"), percentiles(without, g, vg))
    show(paste0(label, "_", analysis, "_bayes_reference"), exact(p$yi, p$vi, g, vg))
    show(paste0(label, "_", analysis, "_bayes_with"), exact(c(p$yi, g), c(p$vi, vg)))
  }
}

# Baseline SD as the standardiser (imrs_client).
show("imrs_client_baseline_conversion", convert("imrs_client", 1, sd_at = "baseline"))

# The trial replaces Jensen 2019 (imrs_client, ITT): reference and "with" both drop it.
conv <- convert("imrs_client", 1)
p <- pub[pub$outcome_label == "imrs_client" & pub$study != "Jensen 2019", ]
ref <- freq(p$yi, p$vi)
show("replaced_with", freq(c(p$yi, conv$g_itt), c(p$vi, conv$v_itt))[-1])
show("replaced_freq", percentiles(ref, conv$g_itt, conv$v_itt))
show("replaced_bayes_reference", exact(p$yi, p$vi, conv$g_itt, conv$v_itt))
