# Second reference: R package bayesmeta 3.4 (Roever 2020, J Stat Softw 93(6)) on the cases of
# data/bayes_exact_reference.json. bayesmeta is not packaged by Debian and CRAN is not reachable here,
# so its R/bayesmeta.R is sourced from the package's source (only bayesmeta.default and its base-R
# dependencies are used; forestplot is not needed):
#
#   git -C <mirror of github.com/cran/bayesmeta> show HEAD:R/bayesmeta.R > /tmp/bayesmeta.R
#   Rscript r/bayesmeta_crosscheck.R /tmp/bayesmeta.R            # writes data/bayesmeta_crosscheck.json
#
# What bayesmeta computes exactly (integrate(), rel.tol 2^16 eps ~ 1.5e-11): the tau posterior (mean,
# SD, quantiles), the marginal likelihood and the Bayes factors. What it approximates: mu, mu_new and
# theta_i come from its DIRECT discretisation of tau (Roever & Friede 2017; delta = 0.01 by default,
# here delta = 1e-3 and epsilon = 1e-6 to tighten it), and its shortest intervals from optimize() with default tolerance.
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) >= 1)
source(args[1])
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1])))
ref <- fromJSON(file.path(here, "..", "data", "bayes_exact_reference.json"), simplifyVector = FALSE)
out_path <- if (length(args) >= 2) args[2] else file.path(here, "..", "data", "bayesmeta_crosscheck.json")

prior_fun <- function(spec) {
  switch(spec$family,
         half_normal = function(t) dhalfnormal(t, scale = spec$scale),
         half_cauchy = function(t) dhalfcauchy(t, scale = spec$scale),
         log_t_tau2 = function(t) ifelse(t > 0, dt((2 * log(t) - spec$location) / spec$scale, spec$nu) /
                                           spec$scale * 2 / t, 0),
         uniform = function(t) dunif(t, 0, spec$upper))
}
num17 <- function(x) {
  if (is.list(x)) return(lapply(x, num17))
  if (is.numeric(x) && length(x) == 1) return(structure(if (is.na(x)) "null" else sprintf("%.17g", x), class = "json"))
  x
}

cases <- list()
for (cs in ref$cases) {
  y <- unlist(cs$y); se <- unlist(cs$se)
  mu_prior <- if (is.null(cs$prior_mu)) c(NA, NA) else c(cs$prior_mu$loc, cs$prior_mu$scale)
  t0 <- proc.time()[["elapsed"]]
  # bayesmeta's own integrate() calls (rel.tol 2^16 eps) can fail on the log-t prior's pole at tau = 0;
  # then retry at rel.tol 1e-9 and record the tolerance used
  rel_tol <- 2^16 * .Machine$double.eps
  fit_bm <- function(tol) suppressWarnings(bayesmeta(y, se, tau.prior = prior_fun(cs$prior_tau), mu.prior = mu_prior,
                                                     delta = 1e-3, epsilon = 1e-6, rel.tol.integrate = tol))
  bm <- tryCatch(fit_bm(rel_tol), error = function(e) NULL)
  if (is.null(bm)) {
    rel_tol <- 1e-9
    bm <- tryCatch(fit_bm(rel_tol), error = function(e) { cat(cs$name, "failed:", conditionMessage(e), "\n"); NULL })
  }
  if (is.null(bm)) { cases[[length(cases) + 1]] <- list(name = cs$name, error = "bayesmeta failed"); next }
  s <- bm$summary
  central_tau <- bm$qposterior(tau.p = c(0.025, 0.975))
  central_mu <- bm$post.interval(mu.level = 0.95, method = "central")
  central_new <- bm$post.interval(mu.level = 0.95, method = "central", predict = TRUE)
  theta <- lapply(seq_along(y), function(i) list(
    mean = bm$theta["mean", i], sd = bm$theta["sd", i], median = bm$theta["median", i],
    hpd_low = bm$theta["95% lower", i], hpd_high = bm$theta["95% upper", i]))
  names(theta) <- paste0("theta", seq_along(y))
  res <- c(list(
    tau = list(mean = s["mean", "tau"], sd = s["sd", "tau"], median = s["median", "tau"],
               ci_low = central_tau[1], ci_high = central_tau[2],
               hpd_low = s["95% lower", "tau"], hpd_high = s["95% upper", "tau"]),
    mu = list(mean = s["mean", "mu"], sd = s["sd", "mu"], median = s["median", "mu"],
              ci_low = central_mu[1], ci_high = central_mu[2],
              hpd_low = s["95% lower", "mu"], hpd_high = s["95% upper", "mu"],
              p_gt_0 = 1 - bm$pposterior(mu = 0)),
    mu_new = list(mean = s["mean", "theta"], sd = s["sd", "theta"], median = s["median", "theta"],
                  ci_low = central_new[1], ci_high = central_new[2],
                  hpd_low = s["95% lower", "theta"], hpd_high = s["95% upper", "theta"])), theta)
  cases[[length(cases) + 1]] <- list(
    name = cs$name, support_points = nrow(bm$support), rel_tol_integrate = num17(rel_tol),
    results = num17(res),
    marginal_likelihood = num17(as.numeric(bm$marginal.likelihood)),
    marginal_likelihood_na_reason = attr(bm$marginal.likelihood, "NA.reason"),
    bayesfactor = num17(list(actual_tau0 = bm$bayesfactor["actual", "tau=0"], actual_mu0 = bm$bayesfactor["actual", "mu=0"],
                             minimum_tau0 = bm$bayesfactor["minimum", "tau=0"], minimum_mu0 = bm$bayesfactor["minimum", "mu=0"])),
    ml_marginal = num17(list(tau = bm$ML["marginal", "tau"], mu = bm$ML["marginal", "mu"])))
  cat(sprintf("%-26s %4d support points  %6.1f s\n", cs$name, nrow(bm$support), proc.time()[["elapsed"]] - t0))
}
meta <- list(generated_by = "r/bayesmeta_crosscheck.R", bayesmeta_version = "3.4 (R/bayesmeta.R from the CRAN sources)",
             r_version = R.version.string, delta = 1e-3, epsilon = 1e-6)
writeLines(toJSON(list(meta = meta, cases = cases), auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                  json_verbatim = TRUE, pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
