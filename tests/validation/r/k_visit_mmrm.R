# Reference numbers for the K-visit MMRM of imrstats.trial.analyses.likelihood_mmrm with a study design of four
# post-baseline visits and arms Active / Placebo (tests/trial/test_design_k_visits.py), on
# tests/validation/data/k_visit_trial.csv (made by tests/validation/data/k_visit_trial_make_data.py).
#
# Run from the repository root:  Rscript tests/validation/r/k_visit_mmrm.R
# Needs nlme, numDeriv, jsonlite. Writes tests/validation/data/k_visit_mmrm_reference.json.
#
# Models (REML; unstructured 4 x 4 covariance = corSymm over the visit index + varIdent by visit):
#   common:   y ~ baseline + arm * visit           (one baseline slope)
#   separate: y ~ baseline * visit + arm * visit   (one baseline slope per visit)
# Per visit, Active - Placebo = armActive (+ armActive:visit<k>), its estimate and model-based SE (vcov(gls)).
#
# gls stops when nlminb's relative change of the objective is small, which can leave Sigma ~1e-6..1e-5 (relative)
# short of the REML maximum. Two sets of numbers are written per model: "gls" as nlme reports them (after
# restarting gls from its own estimate until logLik stops rising), and "optimum": the same linear functions at
# the exact REML maximum, reached from the gls estimate by Newton steps with numDeriv's gradient and Hessian of
# the REML log-likelihood written out (checked against logLik(gls) at the gls estimate). The Python test pins
# the optimum to 1e-6 relative.

suppressPackageStartupMessages({
  library(nlme)
  library(numDeriv)
  library(jsonlite)
})

visits <- c("week4", "week8", "week12", "week16")
d <- read.csv("tests/validation/data/k_visit_trial.csv")
d$visit <- factor(d$visit, levels = visits)
d$vis <- as.integer(d$visit)
d$arm <- factor(d$arm, levels = c("Placebo", "Active"))
d <- d[!is.na(d$y) & !is.na(d$baseline), ]
d <- d[order(d$id, d$vis), ]

fit_model <- function(fml) {
  ctl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12, msTol = 1e-14, returnObject = FALSE)
  fit <- gls(fml, data = d, method = "REML",
             correlation = corSymm(form = ~ vis | id),
             weights = varIdent(form = ~ 1 | visit), control = ctl)
  for (restart in 1:10) {
    before <- as.numeric(logLik(fit))
    fit <- gls(fml, data = d, method = "REML",
               correlation = corSymm(value = coef(fit$modelStruct$corStruct, unconstrained = FALSE),
                                     form = ~ vis | id),
               weights = varIdent(value = coef(fit$modelStruct$varStruct, unconstrained = FALSE),
                                  form = ~ 1 | visit),
               control = ctl)
    if (as.numeric(logLik(fit)) - before < 1e-10) break
  }
  rn <- names(coef(fit))
  L <- t(sapply(seq_along(visits), function(k) {
    l <- setNames(numeric(length(rn)), rn)
    l["armActive"] <- 1
    if (k > 1) {
      name <- intersect(c(paste0("armActive:visit", visits[k]), paste0("visit", visits[k], ":armActive")), rn)
      stopifnot(length(name) == 1)
      l[name] <- 1
    }
    l
  }))

  # REML log-likelihood written out, theta = vech(Sigma) (lower triangle, row-major)
  X <- model.matrix(fml, d)
  stopifnot(identical(colnames(X), rn))
  y <- d$y
  Tn <- length(visits)
  pairs <- do.call(rbind, lapply(1:Tn, function(u) cbind(u, 1:u)))
  to_sigma <- function(theta) {
    S <- matrix(0, Tn, Tn)
    S[pairs] <- theta
    S[pairs[, 2:1, drop = FALSE]] <- theta
    S
  }
  blocks <- split(seq_along(y), d$id)
  parts <- function(theta) {
    S <- to_sigma(theta)
    XWX <- 0; XWy <- 0; yWy <- 0; logdet <- 0
    for (rows in blocks) {
      Si <- S[d$vis[rows], d$vis[rows], drop = FALSE]
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
    -0.5 * ((length(y) - ncol(X)) * log(2 * pi) + q$logdet + as.numeric(determinant(q$XWX)$modulus) +
              q$yWy - sum(q$XWy * beta))
  }
  full_id <- names(which(table(d$id) == Tn))[1]
  Sigma <- unclass(getVarCov(fit, individual = full_id))
  theta_gls <- Sigma[pairs]
  check <- reml(theta_gls) - as.numeric(logLik(fit))
  stopifnot(abs(check) < 1e-6)
  # Newton steps until the step is below numDeriv's own accuracy (~1e-8 relative)
  theta <- theta_gls
  for (it in 1:10) {
    step <- solve(-hessian(reml, theta), grad(reml, theta))
    theta <- theta + step
    if (max(abs(step) / abs(theta)) < 1e-8) break
  }
  q <- parts(theta)
  V <- solve(q$XWX)
  beta <- as.vector(V %*% q$XWy)
  list(
    formula = deparse(fml),
    n_participants = length(blocks),
    n_observations = nrow(d),
    gls = list(
      estimate = as.vector(L %*% coef(fit)),
      se = sqrt(diag(L %*% vcov(fit) %*% t(L))),
      reml_loglik = as.numeric(logLik(fit)),
      restarts = restart
    ),
    optimum = list(
      estimate = as.vector(L %*% beta),
      se = sqrt(diag(L %*% V %*% t(L))),
      reml_loglik = reml(theta),
      sigma = to_sigma(theta),
      newton_iterations = it,
      max_relative_change_of_sigma_vs_gls = max(abs(theta - theta_gls) / abs(theta)),
      gradient_max_abs = max(abs(grad(reml, theta)))
    )
  )
}

out <- list(
  source = paste("Rscript tests/validation/r/k_visit_mmrm.R; R", paste(R.version$major, R.version$minor, sep = "."),
                 "nlme", format(packageVersion("nlme")), "numDeriv", format(packageVersion("numDeriv"))),
  data = "tests/validation/data/k_visit_trial.csv",
  visits = visits,
  contrast = "Active - Placebo",
  common = fit_model(y ~ baseline + arm * visit),
  separate = fit_model(y ~ baseline * visit + arm * visit)
)
write_json(out, "tests/validation/data/k_visit_mmrm_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat(toJSON(out[c("common", "separate")], digits = 10, auto_unbox = TRUE, pretty = TRUE), "\n")
