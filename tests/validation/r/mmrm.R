# Reference numbers for imrstats.trial.mmrm (tests/validation/test_mmrm_vs_r.py).
#
# Run from the repository root:  Rscript tests/validation/r/mmrm.R
# Needs nlme, emmeans, numDeriv (Debian: r-cran-nlme, r-cran-emmeans, r-cran-numderiv).
#
# Model: y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis, unstructured
# within-participant covariance = corSymm + varIdent, REML.
# NB: corSymm(form = ~ 1 | id) would index correlations by the order of a participant's *rows*, so a
# participant seen only at fu12 would get the post-intervention position; the visit index must be
# given explicitly: corSymm(form = ~ visit | id) with visit = 1..T.
#
# Satterthwaite df: nlme gives none. They are computed here by the definition R's mmrm and lmerTest
# use, df = 2 (c'Vc)^2 / (g' A g), with g = d(c' V(theta) c)/d theta and A = inverse of the observed
# REML information (the negative Hessian of the REML log-likelihood), theta = vech(Sigma). The REML
# log-likelihood is written out below, checked against logLik(gls) at the gls estimate, and
# differentiated with numDeriv (Richardson extrapolation). emmeans' own "satterthwaite" mode for gls
# (numerical derivatives of nlme's apVar) is tried as a cross-check; it fails on these fits.
#
# Two sets of numbers are printed per data set: gls_* are nlme::gls / emmeans as reported; the others
# are at the exact REML maximum, reached from the gls estimate by Newton steps with numDeriv's
# gradient and Hessian of the written-out REML function (gls itself stops ~1e-8 short of it with two
# visits and ~1e-5 with three). Python's test pins the latter to 1e-6 and the former to gls's accuracy.

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(numDeriv)
})

fmt <- function(x) sprintf("%.15g", x)
say <- function(key, values) cat(key, " = [", paste(fmt(values), collapse = ", "), "]\n", sep = "")

fit_one <- function(name, times) {
  d <- read.csv(file.path("tests/validation/data", paste0("mmrm_", name, ".csv")))
  d$time <- factor(d$time, levels = times)
  d$visit <- as.integer(d$time)
  d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
  d <- d[!is.na(d$y), ]
  d <- d[order(d$id, d$visit), ]
  fml <- y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis
  fit <- gls(fml, data = d, method = "REML",
             correlation = corSymm(form = ~ visit | id),
             weights = varIdent(form = ~ 1 | time),
             control = glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12,
                                  msTol = 1e-14, returnObject = FALSE))
  # nlminb inside gls stops on a relative change of the objective (~1e-10, not settable through
  # glsControl), which can leave Sigma ~1e-5 short of the maximum with 3 visits; restarting gls from
  # its own estimate until logLik stops rising brings it closer (standard practice, still gls).
  for (restart in 1:5) {
    before <- as.numeric(logLik(fit))
    fit <- gls(fml, data = d, method = "REML",
               correlation = corSymm(value = coef(fit$modelStruct$corStruct, unconstrained = FALSE),
                                     form = ~ visit | id),
               weights = varIdent(value = coef(fit$modelStruct$varStruct, unconstrained = FALSE),
                                  form = ~ 1 | time))
    if (as.numeric(logLik(fit)) - before < 1e-10) break
  }
  cat("## dataset", name, "\n")
  cat("# gls restarts:", restart, "\n")
  cat("# R", R.version$major, R.version$minor, "nlme", format(packageVersion("nlme")),
      "emmeans", format(packageVersion("emmeans")), "\n")
  cat("n_obs =", nrow(d), " n_participants =", length(unique(d$id)), "\n")

  # Our column names for R's coefficient names.
  rn <- names(coef(fit))
  ours <- rn
  for (t in times) {
    ours[rn == paste0("time", t)] <- paste0("time[", t, "]")
    ours[rn == paste0("time", t, ":armIMR")] <- paste0("arm[IMR]:time[", t, "]")
    ours[rn == paste0("time", t, ":baseline")] <- paste0("baseline:time[", t, "]")
  }
  ours <- sub("^site(.*)$", "site[\\1]", ours)
  ours <- sub("^sex(.*)$", "sex[\\1]", ours)
  ours <- sub("^diagnosis(.*)$", "diagnosis[\\1]", ours)
  cat("names = [", paste0('"', ours, '"', collapse = ", "), "]\n", sep = "")
  say("gls_beta", coef(fit))
  say("gls_se", sqrt(diag(vcov(fit))))

  # Covariance matrix of a participant with every visit.
  full_id <- names(which(table(d$id) == length(times)))[1]
  Sigma <- unclass(getVarCov(fit, individual = full_id))
  say("gls_sigma", as.vector(Sigma))
  say("gls_reml_loglik", as.numeric(logLik(fit)))

  # REML log-likelihood written out, theta = vech(Sigma) (lower triangle, row-major).
  X <- model.matrix(fml, d)
  y <- d$y
  ids <- d$id
  vis <- d$visit
  Tn <- length(times)
  pairs <- do.call(rbind, lapply(1:Tn, function(u) cbind(u, 1:u)))
  to_sigma <- function(theta) {
    S <- matrix(0, Tn, Tn)
    S[pairs] <- theta
    S[pairs[, 2:1, drop = FALSE]] <- theta
    S
  }
  blocks <- split(seq_along(y), ids)
  parts <- function(theta) {
    S <- to_sigma(theta)
    XWX <- 0; XWy <- 0; yWy <- 0; logdet <- 0
    for (rows in blocks) {
      Si <- S[vis[rows], vis[rows], drop = FALSE]
      Wi <- solve(Si)
      Xi <- X[rows, , drop = FALSE]
      XWX <- XWX + t(Xi) %*% Wi %*% Xi
      XWy <- XWy + t(Xi) %*% Wi %*% y[rows]
      yWy <- yWy + sum(y[rows] * (Wi %*% y[rows]))
      logdet <- logdet + as.numeric(determinant(Si)$modulus)
    }
    list(XWX = XWX, XWy = XWy, yWy = yWy, logdet = logdet)
  }
  reml <- function(theta) {
    q <- parts(theta)
    beta <- solve(q$XWX, q$XWy)
    rwr <- q$yWy - sum(q$XWy * beta)
    -0.5 * ((length(y) - ncol(X)) * log(2 * pi) + q$logdet +
              as.numeric(determinant(q$XWX)$modulus) + rwr)
  }
  theta_gls <- Sigma[pairs]
  cat("# REML written out at the gls estimate:", fmt(reml(theta_gls)),
      " logLik(gls):", fmt(as.numeric(logLik(fit))),
      " difference:", fmt(reml(theta_gls) - as.numeric(logLik(fit))), "\n")

  # Polish: gls stops when its own criteria are met, which can leave Sigma ~1e-5 (relative) short of
  # the REML maximum (three_visits). Newton steps with numDeriv's gradient and Hessian of the exact
  # REML function take it to the maximum; both the gls and the polished numbers are printed.
  theta_hat <- theta_gls
  # Stop once the Newton step is below numDeriv's own accuracy (~1e-8 relative here).
  for (it in 1:30) {
    step <- solve(-hessian(reml, theta_hat), grad(reml, theta_hat))
    if (max(abs(step) / abs(theta_hat)) < 1e-8) break
    theta_hat <- theta_hat + step
  }
  cat("# polish: iterations", it, " max relative change of theta vs gls",
      fmt(max(abs(theta_hat - theta_gls) / abs(theta_hat))),
      " REML gain", fmt(reml(theta_hat) - reml(theta_gls)), "\n")
  H <- hessian(reml, theta_hat)
  A <- solve(-H)
  q <- parts(theta_hat)
  V <- solve(q$XWX)
  beta <- as.vector(V %*% q$XWy)
  vc <- function(theta) solve(parts(theta)$XWX)
  satterthwaite <- function(L) {
    apply(L, 1, function(cc) {
      v <- function(theta) as.numeric(t(cc) %*% vc(theta) %*% cc)
      gr <- jacobian(v, theta_hat)
      2 * v(theta_hat)^2 / as.numeric(gr %*% A %*% t(gr))
    })
  }

  # Adjusted means and IMR - TAU per visit from emmeans on the gls fit (default grid: numeric
  # covariates at their mean over the analysed rows, factors equally weighted), then the same
  # linear functions at the polished estimate.
  emm <- emmeans(fit, ~ arm | time, data = d, mode = "df.error", nesting = NULL)
  es <- summary(emm)
  ctr <- contrast(emm, method = list("IMR - TAU" = c(-1, 1)))
  cs <- summary(ctr)
  say("gls_means_arm", as.integer(es$arm == "IMR"))
  say("gls_means_estimate", es$emmean)
  say("gls_means_se", es$SE)
  say("gls_contrast_estimate", cs$estimate)
  say("gls_contrast_se", cs$SE)
  Lm <- emm@linfct
  Lc <- ctr@linfct
  say("beta", beta)
  say("se", sqrt(diag(V)))
  say("vcov_beta", as.vector(V))
  say("sigma", as.vector(to_sigma(theta_hat)))
  say("reml_loglik", reml(theta_hat))
  say("cov_theta", as.vector(A))
  say("df_beta", satterthwaite(diag(ncol(X))))
  say("means_estimate", as.vector(Lm %*% beta))
  say("means_se", sqrt(diag(Lm %*% V %*% t(Lm))))
  say("means_df", satterthwaite(Lm))
  say("contrast_estimate", as.vector(Lc %*% beta))
  say("contrast_se", sqrt(diag(Lc %*% V %*% t(Lc))))
  say("contrast_df", satterthwaite(Lc))

  # emmeans' own Satterthwaite for gls (numerical derivatives of nlme's apVar) as a cross-check;
  # on these fits it stops with "Can't estimate Satterthwaite parameters".
  cross <- tryCatch({
    emm_s <- emmeans(fit, ~ arm | time, data = d, mode = "satterthwaite", nesting = NULL)
    fmt(summary(contrast(emm_s, method = list("IMR - TAU" = c(-1, 1))))$df)
  }, error = function(e) paste("not available:", conditionMessage(e)))
  cat("# emmeans mode='satterthwaite' contrast df:", gsub("\n", " ", cross), "\n")
}

fit_one("missing", c("post", "fu12"))
fit_one("complete", c("post", "fu12"))
fit_one("three_visits", c("post", "fu6", "fu12"))
