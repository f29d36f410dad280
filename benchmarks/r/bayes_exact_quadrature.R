# R side of part e of benchmarks/bench_bayes.py (--exact): R's own exact posterior of the normal-normal
# random-effects model for every fit of the default config's Bayesian work, the way bayesmeta computes it
# (Roever 2020, J Stat Softw 93(6)): mu integrated out analytically, tau by stats::integrate (QUADPACK) over
# u = log(tau). Adapted from the independent reference /work/scratch/exact/r/bayes_exact_reference.R (same
# formulas) with a benchmark tolerance: rel.tol 1e-10.
#
# Per fit: the normalising constant; mean and SD of mu, tau, mu_new and of each theta_i; the 2.5%, 50%, 97.5%
# quantiles of mu, tau and mu_new (uniroot on the mixture CDFs, tol 1e-12); P(mu > 0), P(mu > MID),
# P(mu_new > 0), P(mu_new > MID); the marginal likelihood and the Bayes factors for tau = 0 and mu = 0. (Not:
# shortest intervals and the theta quantiles, which imrstats' fit_exact also reports: the R side does less.)
#
# Usage: Rscript benchmarks/r/bayes_exact_quadrature.R WORKLOAD.csv OUT.csv
#   WORKLOAD.csv  one row per fit and study: fit_id, family, location, scale, nu, mu_loc, mu_scale, mid, yi, sei
#   OUT.csv       per fit: fit_id, mu_mean, mu_sd, mu_q025, mu_q975, tau_mean, p_mu_gt_0, ... (checked against
#                 Python's exact engine by bench_bayes.py)
# Prints "TIMING r_exact_fits_s <wall seconds of all fits>", "TIMING r_exact_fits_cpu_s <CPU seconds>" and
# "TIMING r_exact_fits <n>".

REL_TOL <- 1e-10
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
out_path <- args[2]

integ <- function(f, lower, upper) {
  r <- integrate(f, lower, upper, rel.tol = REL_TOL, abs.tol = 0, subdivisions = 2000L, stop.on.error = FALSE)
  if (r$message == "OK") return(r$value)
  m <- if (is.infinite(lower)) upper - 40 else if (is.infinite(upper)) lower + 40 else (lower + upper) / 2
  integrate(f, lower, m, rel.tol = REL_TOL, subdivisions = 2000L)$value +
    integrate(f, m, upper, rel.tol = REL_TOL, subdivisions = 2000L)$value
}

logprior_u <- function(spec) {      # log density of u = log(tau)
  switch(spec$family,
    half_normal = function(u) log(2) + dnorm(exp(u), 0, spec$scale, log = TRUE) + u,
    half_cauchy = function(u) log(2) + dcauchy(exp(u), 0, spec$scale, log = TRUE) + u,
    lognormal_tau2 = function(u) log(2) + dnorm(2 * u, spec$location, spec$scale, log = TRUE),
    log_t_tau2 = function(u) log(2) + dt((2 * u - spec$location) / spec$scale, spec$nu, log = TRUE) - log(spec$scale),
    uniform = function(u) ifelse(exp(u) < spec$scale, u - log(spec$scale), -Inf),
    stop("unknown prior family ", spec$family))
}

loglik_tau <- function(tau, y, se, m0, s0) {   # log p(y | tau), mu ~ N(m0, s0^2) integrated out (Woodbury)
  dd <- outer(tau^2, se^2, "+")
  r <- y - m0
  a <- rowSums(1 / dd)
  quad <- colSums(t(1 / dd) * r^2) - s0^2 * colSums(t(1 / dd) * r)^2 / (1 + s0^2 * a)
  -0.5 * (length(y) * log(2 * pi) + rowSums(log(dd)) + log1p(s0^2 * a) + quad)
}

cond_mu <- function(tau, y, se, m0, s0) {
  w <- 1 / outer(tau^2, se^2, "+")
  prec <- rowSums(w) + 1 / s0^2
  list(m = (colSums(t(w) * y) + m0 / s0^2) / prec, V = 1 / prec)
}

fit_one <- function(f) {
  y <- f$yi; se <- f$sei; k <- length(y)
  m0 <- f$mu_loc[1]; s0 <- f$mu_scale[1]; mid <- f$mid[1]
  spec <- list(family = f$family[1], location = f$location[1], scale = f$scale[1], nu = f$nu[1])
  lp <- logprior_u(spec)
  umax <- if (spec$family == "uniform") log(spec$scale) else Inf
  lpost <- function(u) lp(u) + loglik_tau(exp(u), y, se, m0, s0)
  mode <- optimize(lpost, c(-25, min(8, umax)), maximum = TRUE)
  cst <- mode$objective
  g <- function(u) { v <- exp(lpost(u) - cst); v[!is.finite(v)] <- 0; v }
  Z <- integ(g, -Inf, umax)
  E <- function(h) integ(function(u) { gu <- g(u); v <- gu * h(exp(u)); v[gu == 0] <- 0; v }, -Inf, umax) / Z
  cm <- function(t) cond_mu(t, y, se, m0, s0)
  res <- list(fit_id = f$fit_id[1])
  res$mu_mean <- E(function(t) cm(t)$m)
  res$mu_sd <- sqrt(E(function(t) { c <- cm(t); c$V + c$m^2 }) - res$mu_mean^2)
  res$tau_mean <- E(function(t) t)
  res$tau_sd <- sqrt(E(function(t) t^2) - res$tau_mean^2)
  res$mu_new_sd <- sqrt(E(function(t) { c <- cm(t); c$V + t^2 + c$m^2 }) - res$mu_mean^2)
  for (i in seq_len(k)) {
    th <- function(t) { c <- cm(t); B <- se[i]^2 / (se[i]^2 + t^2); list(m = B * c$m + (1 - B) * y[i], v = (1 - B) * se[i]^2 + B^2 * c$V) }
    mi <- E(function(t) th(t)$m)
    res[[sprintf("theta%d_mean", i)]] <- mi
    res[[sprintf("theta%d_sd", i)]] <- sqrt(E(function(t) { c <- th(t); c$v + c$m^2 }) - mi^2)
  }
  cdf <- function(x, new) E(function(t) { c <- cm(t); pnorm(x, c$m, sqrt(c$V + new * t^2)) })
  for (new in 0:1) {
    nm <- if (new) "mu_new" else "mu"
    sdv <- if (new) res$mu_new_sd else res$mu_sd
    for (p in c(0.025, 0.5, 0.975)) {
      res[[sprintf("%s_q%03d", nm, round(1000 * p))]] <- uniroot(function(x) cdf(x, new) - p,
        res$mu_mean + c(-12, 12) * sdv, tol = 1e-12 * sdv)$root
    }
    res[[sprintf("p_%s_gt_0", nm)]] <- 1 - cdf(0, new)
    if (is.finite(mid)) res[[sprintf("p_%s_gt_mid", nm)]] <- 1 - cdf(mid, new)
  }
  cdf_tau <- function(t) integ(g, -Inf, min(log(t), umax)) / Z
  for (p in c(0.025, 0.5, 0.975)) {
    res[[sprintf("tau_q%03d", round(1000 * p))]] <- exp(uniroot(function(u) cdf_tau(exp(u)) - p,
      c(-40, min(10, umax)), tol = 1e-12)$root)
  }
  # marginal likelihood and Bayes factors (bayesmeta's "actual" row; > 1 favours the point hypothesis)
  log_py <- log(Z) + cst
  res$bf_tau0 <- exp(loglik_tau(0, y, se, m0, s0) - log_py)
  l0 <- function(u) lp(u) + rowSums(dnorm(matrix(y, length(u), k, byrow = TRUE), 0, sqrt(outer(exp(u)^2, se^2, "+")), log = TRUE))
  c0 <- optimize(l0, c(-25, min(8, umax)), maximum = TRUE)$objective
  res$bf_mu0 <- exp(log(integ(function(u) { v <- exp(l0(u) - c0); v[!is.finite(v)] <- 0; v }, -Inf, umax)) + c0 - log_py)
  res
}

fits <- split(d, d$fit_id)
start <- proc.time()
results <- lapply(fits, fit_one)
used <- proc.time() - start
secs <- used[["elapsed"]]
cols <- unique(unlist(lapply(results, names)))
table <- do.call(rbind, lapply(results, function(r) { r[setdiff(cols, names(r))] <- NA; as.data.frame(r[cols]) }))
write.csv(table, out_path, row.names = FALSE)
cat(sprintf("TIMING r_exact_fits_s %.3f\nTIMING r_exact_fits_cpu_s %.3f\nTIMING r_exact_fits %d\n", secs,
            used[["user.self"]] + used[["sys.self"]], length(fits)))
