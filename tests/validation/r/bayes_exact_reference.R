# Independent reference for bayes_exact.py: the exact posterior of the normal-normal random-effects
# model computed straight from the model definition with R's adaptive quadrature (stats::integrate,
# QUADPACK, rel.tol 1e-12) and R's root finder (uniroot) and optimiser (optimize).
#
# Not a port of the Python code. Differences in method, on purpose:
#   * p(y | tau) with mu ~ N(m0, s0^2) integrated out is the multivariate normal density of
#     y ~ N(m0 1, D + s0^2 1 1'), D = diag(se^2 + tau^2), via Woodbury and the matrix determinant lemma
#     (checked against a Cholesky-based density at several tau); with the flat mu prior, BDA3 eq. 5.21.
#   * tau is integrated over u = log(tau) on (-Inf, Inf) (or up to log(upper)) by integrate() with
#     infinite-range transformation, split at fixed offsets around the mode; every posterior quantity
#     (moments, CDFs at any x, densities, P(> c)) is its own integral over tau, evaluated afresh.
#   * quantiles: uniroot on those CDF integrals (tol 1e-14 relative); shortest intervals: optimize()
#     over the lower tail probability p of the width Q(p + 0.95) - Q(p), then the optimum polished by
#     uniroot on the first-order condition f(Q(p)) = f(Q(p + 0.95)); for tau [0, Q(0.95)] is a candidate.
#   * Bayes factors as bayesmeta defines them, each likelihood its own integral; maxima by optimize().
#
# Usage: Rscript r/bayes_exact_reference.R [out.json]   (writes data/bayes_exact_reference.json)

suppressPackageStartupMessages(library(jsonlite))

REL_TOL <- 1e-12
LEVEL <- 0.95
args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[1] else {
  here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
  file.path(here, "..", "data", "bayes_exact_reference.json")
}

# every integrand is scaled so that the posterior density of log(tau) peaks at 1: its integrals are O(1),
# and abs.tol 1e-16 only stops QUADPACK from chasing relative accuracy in far tails holding nothing
integ <- function(f, lower, upper, depth = 0) {
  r <- integrate(f, lower, upper, rel.tol = REL_TOL, abs.tol = 1e-16, subdivisions = 20000L, stop.on.error = FALSE)
  if (r$message == "OK") return(r$value)
  if (depth >= 6) stop(sprintf("integrate failed on (%g, %g): %s", lower, upper, r$message))
  # split the range and try again (QUADPACK's extrapolation can trip on long smooth tails)
  mid <- if (is.infinite(lower)) upper - 50 * 2^depth else if (is.infinite(upper)) lower + 50 * 2^depth else (lower + upper) / 2
  integ(f, lower, mid, depth + 1) + integ(f, mid, upper, depth + 1)
}

# ---- priors on tau: log densities -------------------------------------------------------------
# each prior also as the log density of u = log(tau) (written on the log scale where that avoids
# underflow of tau = exp(u) far below any standard error)
make_prior <- function(spec) {
  fam <- spec$family
  if (fam == "half_normal") {
    p <- list(logpdf = function(t) log(2) + dnorm(t, 0, spec$scale, log = TRUE), upper = Inf)
  } else if (fam == "half_cauchy") {
    p <- list(logpdf = function(t) log(2) + dcauchy(t, 0, spec$scale, log = TRUE), upper = Inf)
  } else if (fam == "log_t_tau2") {
    # log(tau^2) ~ t_nu(location, scale): density of tau = f_t(2 log tau) * 2 / tau; of u = log tau: 2 f_t(2 u)
    return(list(logpdf_u = function(u) dt((2 * u - spec$location) / spec$scale, spec$nu, log = TRUE) -
                  log(spec$scale) + log(2), upper = Inf))
  } else if (fam == "uniform") {
    p <- list(logpdf = function(t) ifelse(t < spec$upper, -log(spec$upper), -Inf), upper = spec$upper)
  } else stop("unknown prior family ", fam)
  p$logpdf_u <- function(u) p$logpdf(exp(u)) + u
  p
}

# ---- likelihood p(y | tau), mu integrated ---------------------------------------------------------
loglik_tau_woodbury <- function(tau, y, se, m0, s0) {     # vectorised over tau
  d <- outer(tau^2, se^2, "+")                              # (n, k)
  if (is.finite(s0)) {
    r <- y - m0
    a <- rowSums(1 / d)
    quad <- colSums(t(1 / d) * r^2) - s0^2 * colSums(t(1 / d) * r)^2 / (1 + s0^2 * a)
    logdet <- rowSums(log(d)) + log1p(s0^2 * a)
    -0.5 * (length(y) * log(2 * pi) + logdet + quad)
  } else {
    # BDA3 eq. 5.21 (flat prior on mu): V^(1/2) prod (se^2 + tau^2)^(-1/2) exp(-sum (y - muhat)^2 / 2 d),
    # times (2 pi)^(-(k-1)/2) so that it is the integral over mu of prod N(y_i; mu, d_i)
    v <- 1 / rowSums(1 / d)
    muhat <- v * colSums(t(1 / d) * y)
    -0.5 * ((length(y) - 1) * log(2 * pi) + rowSums(log(d)) - log(v) + rowSums((outer(-muhat, y, "+"))^2 / d))
  }
}

loglik_tau_chol <- function(t, y, se, m0, s0) {
  S <- diag(se^2 + t^2, length(y)) + s0^2
  L <- chol(S)
  z <- backsolve(L, y - m0, transpose = TRUE)
  -0.5 * (length(y) * log(2 * pi) + 2 * sum(log(diag(L))) + sum(z^2))
}

loglik_mu_tau <- function(mu, tau, y, se) {      # log prod N(y_i; mu, se_i^2 + tau^2), vectorised over tau
  d <- outer(tau^2, se^2, "+")
  rowSums(dnorm(matrix(y, nrow(d), length(y), byrow = TRUE), mu, sqrt(d), log = TRUE))
}

cond_mu <- function(tau, y, se, m0, s0) {        # mu | tau, y ~ N(m, V)
  w <- 1 / outer(tau^2, se^2, "+")
  prec <- rowSums(w) + (if (is.finite(s0)) 1 / s0^2 else 0)
  num <- colSums(t(w) * y) + (if (is.finite(s0)) m0 / s0^2 else 0)
  list(m = num / prec, V = 1 / prec)
}

# conditional mean and sd of a parameter given tau (vectors over tau)
cond_par <- function(par, tau, y, se, m0, s0) {
  cm <- cond_mu(tau, y, se, m0, s0)
  if (par == "mu") return(list(mean = cm$m, sd = sqrt(cm$V)))
  if (par == "mu_new") return(list(mean = cm$m, sd = sqrt(cm$V + tau^2)))
  i <- as.integer(sub("theta", "", par))
  B <- se[i]^2 / (se[i]^2 + tau^2)
  list(mean = B * cm$m + (1 - B) * y[i], sd = sqrt((1 - B) * se[i]^2 + B^2 * cm$V))
}

# ---- one case ------------------------------------------------------------------------------------
run_case <- function(case) {
  y <- unlist(case$y); se <- unlist(case$se); k <- length(y)
  m0 <- if (is.null(case$prior_mu)) 0 else case$prior_mu$loc
  s0 <- if (is.null(case$prior_mu)) Inf else case$prior_mu$scale
  prior <- make_prior(case$prior_tau)
  umax <- if (is.finite(prior$upper)) log(prior$upper) else Inf
  mid <- case$mid

  # self-check of the closed form against a Cholesky-based density
  if (is.finite(s0)) for (t in c(0, 0.01, 0.3, 3, 30) * max(se)) {
    a <- loglik_tau_woodbury(t, y, se, m0, s0); b <- loglik_tau_chol(t, y, se, m0, s0)
    stopifnot(abs(a - b) < 1e-10 * max(1, abs(b)))
  }
  lpost_u <- function(u) prior$logpdf_u(u) + loglik_tau_woodbury(exp(u), y, se, m0, s0)
  opt <- optimize(function(u) -lpost_u(u), c(log(min(se)) - 15, min(umax, log(max(se)) + 15)), tol = 1e-8)
  mode <- opt$minimum
  cst <- -opt$objective
  if (lpost_u(log(min(se)) - 40) > cst) cst <- lpost_u(log(min(se)) - 40)    # density piled at tau = 0
  g <- function(u) { v <- exp(lpost_u(u) - cst); v[!is.finite(v)] <- 0; v }
  offs <- c(-20, -4, -1.5, 0, 1.5, 4, 20)
  brk <- sort(unique(c(mode + offs)))
  brk <- brk[brk < umax]
  over_u <- function(f, upper = umax) {       # ∫ f(u) du over (-Inf, upper], in pieces
    b <- c(-Inf, brk[brk < upper], upper)
    total <- 0
    for (j in seq_len(length(b) - 1)) if (b[j] < b[j + 1]) total <- total + integ(f, b[j], b[j + 1])
    total
  }
  Z <- over_u(g)
  E <- function(h) over_u(function(u) { gu <- g(u); v <- gu * h(exp(u)); v[gu == 0] <- 0; v }) / Z
  Epow <- function(m) over_u(function(u) { v <- exp(lpost_u(u) + m * u - cst); v[!is.finite(v)] <- 0; v }) / Z

  # ---- tau
  cdf_tau <- function(t) if (t <= 0) 0 else min(1, over_u(g, upper = min(log(t), umax)) / Z)
  pdf_tau <- function(t) g(log(t)) / (t * Z)
  q_tau <- function(p) {
    if (p <= 0) return(0)
    hi <- mode + 1
    while (cdf_tau(exp(hi)) < p && hi < umax) hi <- min(hi + 2, umax)
    lo <- mode - 1
    while (cdf_tau(exp(lo)) > p) lo <- lo - 2
    exp(uniroot(function(u) cdf_tau(exp(u)) - p, c(lo, hi), tol = 1e-14)$root)
  }
  tmean <- Epow(1)
  tm2 <- if (isTRUE(case$tau_sd_infinite)) NA else Epow(2)
  tsd <- if (is.finite(tm2) && !isTRUE(case$tau_sd_infinite)) sqrt(tm2 - tmean^2) else NA
  tq <- sapply(c((1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2), q_tau)
  tau_hpd <- shortest(function(p) q_tau(p), function(x) log(pdf_tau(x)), lower_bound_zero = TRUE)
  out <- list(tau = list(mean = tmean, sd = tsd, median = tq[2], ci_low = tq[1], ci_high = tq[3],
                         hpd_low = tau_hpd[1], hpd_high = tau_hpd[2]))

  # ---- mu, mu_new, theta_i
  pars <- c("mu", "mu_new", paste0("theta", seq_len(k)))
  for (par in pars) {
    cp <- function(t) cond_par(par, t, y, se, m0, s0)
    pmean <- E(function(t) cp(t)$mean)
    psd <- if (par == "mu_new" && !is.finite(tsd)) NA else
      sqrt(E(function(t) { c <- cp(t); c$sd^2 + (c$mean - pmean)^2 }))
    cdf <- function(x) E(function(t) { c <- cp(t); pnorm(x, c$mean, c$sd) })
    sf <- function(x) E(function(t) { c <- cp(t); pnorm(x, c$mean, c$sd, lower.tail = FALSE) })
    pdf <- function(x) E(function(t) { c <- cp(t); dnorm(x, c$mean, c$sd) })
    scale <- if (is.finite(psd)) psd else max(se)
    q <- function(p) {
      lo <- pmean - 3 * scale; hi <- pmean + 3 * scale
      while (cdf(lo) > p) lo <- lo - 3 * scale
      while (cdf(hi) < p) hi <- hi + 3 * scale
      uniroot(function(x) cdf(x) - p, c(lo, hi), tol = 1e-14 * scale)$root
    }
    qs <- sapply(c((1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2), q)
    hpd <- shortest(q, function(x) log(pdf(x)), lower_bound_zero = FALSE)
    out[[par]] <- list(mean = pmean, sd = psd, median = qs[2], ci_low = qs[1], ci_high = qs[3],
                       hpd_low = hpd[1], hpd_high = hpd[2], p_gt_0 = sf(0),
                       p_gt_mid = if (is.null(mid)) NA else sf(mid))
  }

  # ---- marginal likelihood and Bayes factors (bayesmeta's definitions)
  bf <- list(actual_tau0 = NA, actual_mu0 = NA, minimum_tau0 = NA, minimum_mu0 = NA)
  logml <- NA
  ll0 <- loglik_tau_woodbury(0, y, se, m0, s0)
  # p(y | mu) = ∫ p(y | mu, tau) p(tau) dtau, on log scale with its own constant
  log_py_mu <- function(mu) {
    f0 <- function(u) prior$logpdf_u(u) + loglik_mu_tau(mu, exp(u), y, se)
    o <- optimize(function(u) -f0(u), c(log(min(se)) - 15, min(umax, log(max(se)) + 15)), tol = 1e-8)
    c0 <- max(-o$objective, f0(log(min(se)) - 40))
    gg <- function(u) { v <- exp(f0(u) - c0); v[!is.finite(v)] <- 0; v }
    b <- sort(unique(o$minimum + offs)); b <- b[b < umax]
    b <- c(-Inf, b, umax)
    tot <- 0
    for (j in seq_len(length(b) - 1)) tot <- tot + integ(gg, b[j], b[j + 1])
    log(tot) + c0
  }
  lpy_mu0 <- log_py_mu(0)
  mu_opt <- optimize(function(m) -log_py_mu(m), range(y) + c(-1, 1) * max(se), tol = 1e-9)
  bf$minimum_mu0 <- exp(lpy_mu0 + mu_opt$objective)
  ml <- list(mu = mu_opt$minimum, tau = NA)
  if (is.finite(s0)) {
    logml <- log(Z) + cst                      # the shipped priors are normalised densities
    bf$actual_tau0 <- exp(ll0 - logml)
    bf$actual_mu0 <- exp(lpy_mu0 - logml)
    to <- optimize(function(u) -loglik_tau_woodbury(exp(u), y, se, m0, s0),
                   c(log(min(se)) - 20, log(max(se) + diff(range(y))) + 5), tol = 1e-10)
    if (-to$objective > ll0) { ml$tau <- exp(to$minimum); llmax <- -to$objective } else { ml$tau <- 0; llmax <- ll0 }
    bf$minimum_tau0 <- exp(ll0 - llmax)
  }
  list(name = case$name, y = vec17(y), se = vec17(se), prior_mu = case$prior_mu, prior_tau = case$prior_tau,
       mid = mid, ci = LEVEL, results = num17(out), log_marginal_likelihood = num17(logml),
       bayes_factors = num17(bf), ml_marginal = num17(ml))
}

# numbers with 17 significant digits (jsonlite itself stops at 15): pre-formatted, inserted verbatim
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) && length(x) == 1) return(structure(if (is.na(x)) "null" else sprintf("%.17g", x), class = "json"))
  x
}
vec17 <- function(x) structure(paste0("[", paste(sprintf("%.17g", x), collapse = ", "), "]"), class = "json")

# shortest interval [Q(p), Q(p + LEVEL)] over p in [0, 1 - LEVEL]: optimize() on the width, then
# uniroot on f(Q(p)) = f(Q(p + LEVEL)) near the optimum; for tau also [0, Q(LEVEL)]
shortest <- function(q, logf, lower_bound_zero) {
  width <- function(p) q(p + LEVEL) - (if (lower_bound_zero && p <= 0) 0 else q(p))
  pmin_ <- if (lower_bound_zero) 0 else (1 - LEVEL) / 1000
  o <- optimize(width, c(pmin_, 1 - LEVEL - (1 - LEVEL) / 1000), tol = 1e-7)
  p <- o$minimum
  d <- function(p) logf(q(p)) - logf(q(p + LEVEL))
  lo <- max(pmin_, p - 1e-3); hi <- min(1 - LEVEL - 1e-9, p + 1e-3)
  dl <- if (lower_bound_zero && lo <= 0) -Inf else d(lo)
  if (is.finite(dl) && dl < 0 && d(hi) > 0) {
    p <- uniroot(d, c(lo, hi), tol = 1e-15)$root
  } else if (!lower_bound_zero) {
    stop("shortest interval: could not bracket the first-order condition")
  }
  res <- c(q(p), q(p + LEVEL))
  if (lower_bound_zero) {
    zero <- c(0, q(LEVEL))
    if (diff(zero) <= diff(res)) res <- zero
  }
  res
}

# ---- the cases ---------------------------------------------------------------------------------
eight <- list(y = c(28, 8, -3, 7, -1, 1, 18, 12), se = c(15, 10, 16, 11, 9, 11, 10, 18))
smd2 <- list(y = c(0.30, 0.05), se = c(0.15, 0.20))
smd3 <- list(y = c(0.25, 0.10, 0.40), se = c(0.12, 0.18, 0.22))
homog <- list(y = c(0.20, 0.21, 0.19, 0.20), se = rep(0.1, 4))
one <- list(y = 0.3, se = 0.15)
hn <- list(family = "half_normal", scale = 0.5)
hc <- list(family = "half_cauchy", scale = 0.5)
# Rhodes et al. 2015 (J Clin Epidemiol 68:52-60), mental health, non-pharmacological: imrstats'
# SHIPPED_TAU_PRIORS["rhodes_mental_health_nonpharm"] = LogTTau2(-3.85, 1.93, 5)
lt <- list(family = "log_t_tau2", location = -3.85, scale = 1.93, nu = 5)
un <- list(family = "uniform", upper = 2)
n01 <- list(loc = 0, scale = 1)
case <- function(name, data, prior_tau, prior_mu = n01, mid = 0.2, ...) c(list(name = name, y = data$y, se = data$se,
  prior_mu = prior_mu, prior_tau = prior_tau, mid = mid), list(...))
cases <- list(
  case("eight_schools_hc5", eight, list(family = "half_cauchy", scale = 5), list(loc = 0, scale = 5), mid = 5),
  case("eight_schools_hn5", eight, list(family = "half_normal", scale = 5), list(loc = 0, scale = 5), mid = 5),
  case("eight_schools_flat_u1000", eight, list(family = "uniform", upper = 1000), NULL, mid = 5),
  case("smd_k2_hn", smd2, hn), case("smd_k2_hc", smd2, hc), case("smd_k2_logt", smd2, lt), case("smd_k2_unif", smd2, un),
  case("smd_k3_hn", smd3, hn), case("smd_k3_hc", smd3, hc), case("smd_k3_logt", smd3, lt), case("smd_k3_unif", smd3, un),
  case("homog_k4_hn", homog, hn), case("homog_k4_logt", homog, lt),
  case("k1_hn", one, hn),
  case("k1_hc", one, hc, tau_sd_infinite = TRUE)   # posterior of tau ~ tau^-3: E[tau^2] infinite
)
only <- Sys.getenv("CASES")
if (nzchar(only)) cases <- Filter(function(c) c$name %in% strsplit(only, ",")[[1]], cases)

# each case is cached (RDS) next to the output, so an interrupted run resumes; delete the folder to recompute
parts <- paste0(out_path, ".parts")
dir.create(parts, showWarnings = FALSE, recursive = TRUE)
results <- list()
for (cs in cases) {
  part <- file.path(parts, paste0(cs$name, ".rds"))
  if (file.exists(part)) { results[[length(results) + 1]] <- readRDS(part); next }
  t0 <- proc.time()[["elapsed"]]
  res <- run_case(cs)
  saveRDS(res, part)
  results[[length(results) + 1]] <- res
  cat(sprintf("%-26s %6.1f s\n", cs$name, proc.time()[["elapsed"]] - t0))
}
meta <- list(generated_by = "r/bayes_exact_reference.R", r_version = R.version.string,
             method = "stats::integrate over log(tau), rel.tol 1e-12 (abs.tol 1e-16 on O(1) integrands); uniroot tol 1e-14; optimize + uniroot for shortest intervals",
             level = LEVEL)
dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(list(meta = meta, cases = results), auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                  json_verbatim = TRUE, pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
