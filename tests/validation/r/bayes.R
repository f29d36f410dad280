# Reference values for imrstats.meta.bayes (pinned in tests/validation/test_bayes_validation.py).
#
# Exact posterior of the normal-normal random-effects model
#   y_i ~ N(theta_i, v_i), theta_i ~ N(mu, tau^2), mu ~ N(m0, s0^2), tau ~ prior
# computed without sampling: mu and theta are integrated out analytically (Gelman et al. 2013,
# BDA3 section 5.4, eqs. 5.17-5.21 with a normal instead of flat prior on mu), then one-dimensional
# numerical integration over s = log(tau) with stats::integrate. REML by metafor::rma.
#
# Run from the repository root:  Rscript tests/validation/r/bayes.R
suppressPackageStartupMessages(library(metafor))

here <- "tests/validation/data"
schools <- read.csv(file.path(here, "bayes_eight_schools.csv"))
smd <- read.csv(file.path(here, "bayes_smd_synthetic.csv"))

# log prior densities on s = log(tau) (each includes the Jacobian of its own scale)
lp_half_normal <- function(scale) function(s) log(2 * dnorm(exp(s), 0, scale)) + s
lp_half_cauchy <- function(scale) function(s) log(2 * dcauchy(exp(s), 0, scale)) + s
lp_lognormal_tau2 <- function(m, sd) function(s) dnorm(2 * s, m, sd, log = TRUE) + log(2)
lp_logt_tau2 <- function(loc, scale, nu = 5) function(s) dt((2 * s - loc) / scale, nu, log = TRUE) - log(scale) + log(2)

# Conditional on s: posterior of mu is N(mh, V); log marginal likelihood up to a constant.
conditional <- function(s, y, v, m0, s0) {
  tau2 <- exp(2 * s)
  w <- 1 / (v + tau2)
  P <- 1 / s0^2 + sum(w)
  mh <- (m0 / s0^2 + sum(w * y)) / P
  loglik <- -0.5 * sum(log(v + tau2)) - 0.5 * log(P) - 0.5 * (sum(w * y^2) + m0^2 / s0^2 - P * mh^2)
  list(tau2 = tau2, mh = mh, V = 1 / P, loglik = loglik)
}

exact_posterior <- function(y, se, m0, s0, lprior, lower = -20, upper = 8, thresholds = c(0)) {
  v <- se^2
  grid <- seq(lower, upper, length.out = 4001)
  shift <- max(sapply(grid, function(s) conditional(s, y, v, m0, s0)$loglik + lprior(s)))
  expect <- function(g) {
    f <- function(ss) sapply(ss, function(s) {
      cc <- conditional(s, y, v, m0, s0)
      exp(cc$loglik + lprior(s) - shift) * g(s, cc)
    })
    integrate(f, lower, upper, subdivisions = 5000L, rel.tol = 1e-11, abs.tol = 0)$value
  }
  Z <- expect(function(s, cc) 1)
  E <- function(g) expect(g) / Z
  out <- list()
  out$mu_mean <- E(function(s, cc) cc$mh)
  out$mu_sd <- sqrt(E(function(s, cc) cc$V + cc$mh^2) - out$mu_mean^2)
  out$tau_mean <- E(function(s, cc) exp(s))
  for (c0 in thresholds) {
    out[[sprintf("p_mu_gt_%g", c0)]] <- E(function(s, cc) pnorm((cc$mh - c0) / sqrt(cc$V)))
    out[[sprintf("p_new_gt_%g", c0)]] <- E(function(s, cc) pnorm((cc$mh - c0) / sqrt(cc$V + cc$tau2)))
  }
  for (i in seq_along(y)) {
    out[[sprintf("theta_mean_%d", i)]] <- E(function(s, cc) {
      B <- v[i] / (v[i] + cc$tau2)
      B * cc$mh + (1 - B) * y[i]
    })
  }
  cdf <- function(q) E(function(s, cc) pnorm((q - cc$mh) / sqrt(cc$V)))
  span <- c(out$mu_mean - 20 * out$mu_sd, out$mu_mean + 20 * out$mu_sd)
  out$mu_q025 <- uniroot(function(q) cdf(q) - 0.025, span, tol = 1e-10)$root
  out$mu_q975 <- uniroot(function(q) cdf(q) - 0.975, span, tol = 1e-10)$root
  out
}

show <- function(case, res) {
  for (nm in names(res)) cat(sprintf("%s %s %s\n", case, nm, format(res[[nm]], digits = 15)))
}

# 1. Eight schools, the Stan / PyMC documentation priors: mu ~ N(0, 5), tau ~ HalfCauchy(5).
show("eight_schools_hc5", exact_posterior(schools$y, schools$se, 0, 5, lp_half_cauchy(5), lower = -15, upper = 9))

# 2. Synthetic SMDs under each shipped prior family, mu ~ N(0, 1); threshold 0.2 = MID.
th <- c(0, 0.2)
show("smd_half_normal_0.5", exact_posterior(smd$yi, smd$sei, 0, 1, lp_half_normal(0.5), thresholds = th))
show("smd_half_cauchy_0.5", exact_posterior(smd$yi, smd$sei, 0, 1, lp_half_cauchy(0.5), thresholds = th))
show("smd_rhodes_mh_nonpharm", exact_posterior(smd$yi, smd$sei, 0, 1, lp_logt_tau2(-3.85, 1.93, 5), thresholds = th))
show("smd_turner_mh_nonpharm", exact_posterior(smd$yi, smd$sei, 0, 1, lp_lognormal_tau2(-2.34, 1.72), thresholds = th))

# 3. Wide prior on mu, N(0, 1000): posterior mean of mu against REML.
wide <- exact_posterior(smd$yi, smd$sei, 0, 1000, lp_half_normal(0.5))
show("smd_wide_half_normal_0.5", wide[c("mu_mean", "mu_sd", "tau_mean")])
reml <- rma(yi = smd$yi, sei = smd$sei, method = "REML")
cat(sprintf("smd_reml mu %s\n", format(as.numeric(reml$b), digits = 15)))
cat(sprintf("smd_reml tau2 %s\n", format(reml$tau2, digits = 15)))
# Equal standard errors: mu-hat(tau) is the plain mean for every tau, so E(mu | y) = REML mu exactly
# (up to the N(0, 1000) prior's 1e-7 pull).
eq_se <- rep(0.15, nrow(smd))
wide_eq <- exact_posterior(smd$yi, eq_se, 0, 1000, lp_half_normal(0.5))
show("smd_equal_se_wide", wide_eq[c("mu_mean", "mu_sd", "tau_mean")])
reml_eq <- rma(yi = smd$yi, sei = eq_se, method = "REML")
cat(sprintf("smd_equal_se_reml mu %s\n", format(as.numeric(reml_eq$b), digits = 15)))

# 4. Eight schools under BDA3's prior (sections 5.4-5.5), the one the RStan "Getting Started" example samples:
#    p(mu, tau) flat on tau > 0. s0 = Inf makes the mu prior flat; tau's flat prior on s = log(tau) has
#    density exp(s) (the constant is dropped). Our sampler needs proper priors, so it runs
#    mu ~ N(0, 10000), tau ~ Uniform(0, 1000); case 5 shows that changes nothing at this precision.
lp_uniform <- function(s) s
show("eight_schools_flat", exact_posterior(schools$y, schools$se, 0, Inf, lp_uniform, lower = -15, upper = log(1000)))
show("eight_schools_n1e4_u1000", exact_posterior(schools$y, schools$se, 0, 1e4, lp_uniform, lower = -15, upper = log(1000)))
