# Reference numbers for imrstats.trial.mmrm's Kenward-Roger inference (tests/validation/test_mmrm_kr_vs_r.py).
#
# Run from the repository root:  Rscript tests/validation/r/mmrm_kr.R
# Needs nlme, numDeriv, pbkrtest (Debian: r-cran-nlme, r-cran-numderiv, r-cran-pbkrtest).
#
# The primary, independent reference for Kenward-Roger is SAS PROC MIXED DDFM=KR, pinned in the Python
# test from the openpharma/mmrm repository (see its docstring); this script adds checks of the same
# formulas on richer designs (many fixed effects, 2-4 visits, several missingness patterns, multi-row F):
#
# 1. The REML maximum: nlme::gls (corSymm(~ visit | id) + varIdent(~ 1 | time), REML) as the start,
#    refined by Newton steps with the dense analytic REML score and observed information in
#    theta = vech(Sigma) (lower triangle, row-major: (1,1), (2,1), (2,2), (3,1), ...), the parameterization
#    imrstats uses; the REML log-likelihood is also written out (checked against logLik(gls)) and its
#    numDeriv Hessian compared with the analytic information (printed as a comment).
# 2. pbkrtest's own KR code (pbkrtest:::vcovAdj_internal, the engine of pbkrtest::vcovAdj for lmer fits)
#    called on the dense N x N covariance of all observations and its derivatives G_h = dSigma/dtheta_h:
#    the adjusted cov(beta) Phi_A with pbkrtest's W = inverse *expected* REML information ("pbk_*").
# 3. SAS and R's mmrm use W = inverse *observed* REML information (the negative Hessian); pbkrtest offers
#    no switch, so Phi_A is formed here by the KR formula from dense P_h, Q_hj (checked to reproduce
#    pbkrtest's Phi_A when given pbkrtest's W, to 1e-10), with W = solve(-numDeriv Hessian) ("kr_*");
#    F tests by pbkrtest:::.KR_adjust with that W and pbkrtest's P_h (its A1, A2, m, lambda code).
#
# Data: tests/validation/data/mmrm_kr_fev.csv (R mmrm's fev_data, see the Python test) with the SAS
# model FEV1 ~ ARMCD, and the synthetic trials mmrm_missing.csv / mmrm_three_visits.csv of
# test_mmrm_vs_r.py with imrstats' default design 0 + time + arm:time + baseline:time + covariates.
# Printed with 15 significant digits.

suppressPackageStartupMessages({
  library(nlme)
  library(numDeriv)
  library(pbkrtest)
})

fmt <- function(x) sprintf("%.15g", x)
say <- function(key, values) cat(key, " = [", paste(fmt(values), collapse = ", "), "]\n", sep = "")

vech_pairs <- function(T) {
  do.call(rbind, lapply(1:T, function(u) cbind(u, 1:u)))
}

sigma_of <- function(theta, T) {
  pr <- vech_pairs(T)
  S <- matrix(0, T, T)
  S[pr] <- theta
  S[pr[, 2:1, drop = FALSE]] <- theta
  S
}

# REML log-likelihood (Harville 1977) of theta = vech(Sigma), dense per participant.
make_reml <- function(X, y, id, visit, T) {
  groups <- split(seq_along(y), id)
  N <- length(y); p <- ncol(X)
  function(theta, what = "loglik") {
    S <- sigma_of(theta, T)
    xwx <- matrix(0, p, p); xwy <- numeric(p); ywy <- 0; logdet <- 0
    for (g in groups) {
      C <- chol(S[visit[g], visit[g], drop = FALSE])
      Wi <- chol2inv(C)
      Xi <- X[g, , drop = FALSE]
      logdet <- logdet + 2 * sum(log(diag(C)))
      xwx <- xwx + t(Xi) %*% Wi %*% Xi
      xwy <- xwy + t(Xi) %*% Wi %*% y[g]
      ywy <- ywy + sum(y[g] * (Wi %*% y[g]))
    }
    beta <- solve(xwx, xwy)
    if (what == "beta") return(list(beta = drop(beta), Phi = solve(xwx)))
    -0.5 * ((N - p) * log(2 * pi) + logdet + as.numeric(determinant(xwx)$modulus) + ywy - sum(xwy * beta))
  }
}

kr_reference <- function(name, X, y, id, visit, T, gls_fit, contrasts, ftests) {
  cat("## dataset", name, "\n")
  cat("# R", R.version$major, R.version$minor, "nlme", format(packageVersion("nlme")), "numDeriv",
      format(packageVersion("numDeriv")), "pbkrtest", format(packageVersion("pbkrtest")), "\n")
  reml <- make_reml(X, y, id, visit, T)
  pr <- vech_pairs(T)
  S0 <- getVarCov(gls_fit, individual = names(which(table(id) == T))[1])
  theta <- S0[pr]
  cat("# logLik(gls) - written-out REML at the gls estimate:", fmt(as.numeric(logLik(gls_fit)) - reml(theta)), "\n")
  N <- length(y); m <- nrow(pr)
  G <- lapply(1:m, function(h) {  # dSigma_all / dtheta_h: N x N, block diagonal by participant
    E <- matrix(0, T, T); E[pr[h, 1], pr[h, 2]] <- 1; E[pr[h, 2], pr[h, 1]] <- 1
    Gh <- matrix(0, N, N)
    for (g in split(seq_along(y), id)) Gh[g, g] <- E[visit[g], visit[g]]
    Gh
  })
  # dense analytic REML score and observed information (Jennrich & Schluchter 1986):
  # dl/dtheta_h = -tr(P G_h)/2 + y'P G_h P y/2;  -d2l = y'P G_h P G_j P y - tr(P G_h P G_j)/2
  score_info <- function(theta) {
    S <- sigma_of(theta, T)
    Sigma <- matrix(0, N, N)
    for (g in split(seq_along(y), id)) Sigma[g, g] <- S[visit[g], visit[g]]
    Si <- solve(Sigma)
    Pm <- Si - Si %*% X %*% solve(t(X) %*% Si %*% X, t(X) %*% Si)
    Py <- Pm %*% y
    PG <- lapply(G, function(Gh) Pm %*% Gh)
    score <- sapply(1:m, function(h) -sum(diag(PG[[h]])) / 2 + sum(Py * (G[[h]] %*% Py)) / 2)
    info <- matrix(0, m, m)
    for (h in 1:m) for (j in 1:m)
      info[h, j] <- sum(Py * (G[[h]] %*% (Pm %*% (G[[j]] %*% Py)))) - sum(PG[[h]] * t(PG[[j]])) / 2
    list(score = score, info = (info + t(info)) / 2, Sigma = Sigma)
  }
  for (it in 1:50) {  # Newton to the exact maximum (gls stops short by ~1e-8 .. 1e-5 in Sigma)
    si <- score_info(theta)
    step <- solve(si$info, si$score)
    theta <- theta + step
    if (max(abs(step) / sqrt(diag(sigma_of(theta, T))[pr[, 1]] * diag(sigma_of(theta, T))[pr[, 2]])) < 1e-12) break
  }
  si <- score_info(theta)
  cat("# Newton steps:", it, " max |score| at the end:", fmt(max(abs(si$score))), "\n")
  S <- sigma_of(theta, T)
  bp <- reml(theta, "beta")
  beta <- bp$beta; Phi <- bp$Phi
  W_obs <- solve(si$info)
  num_info <- -hessian(reml, theta)
  cat("# analytic vs numDeriv observed information (max rel):", fmt(max(abs(num_info - si$info)) / max(abs(si$info))), "\n")

  Sigma <- si$Sigma
  PhiA_pbk <- pbkrtest:::vcovAdj_internal(Phi, list(Sigma = Sigma, G = G, n.ggamma = m), X)
  W_exp <- as.matrix(attr(PhiA_pbk, "W"))
  P <- lapply(attr(PhiA_pbk, "P"), as.matrix)

  # KR's Phi_A for a given W, from dense P_h = -X' Si G_h Si X and Q_hj = X' Si G_h Si G_j Si X
  Si <- solve(Sigma)
  SiX <- Si %*% X
  Q <- lapply(1:m, function(h) lapply(1:m, function(j) t(SiX) %*% G[[h]] %*% Si %*% G[[j]] %*% SiX))
  Pd <- lapply(1:m, function(h) -t(SiX) %*% G[[h]] %*% SiX)
  phi_adj <- function(W) {
    U <- matrix(0, ncol(X), ncol(X))
    for (h in 1:m) for (j in 1:m) U <- U + W[h, j] * (Q[[h]][[j]] - Pd[[h]] %*% Phi %*% Pd[[j]])
    Phi + 2 * Phi %*% U %*% Phi
  }
  check <- max(abs(phi_adj(W_exp) - as.matrix(PhiA_pbk))) / max(abs(as.matrix(PhiA_pbk)))
  cat("# dense KR formula vs pbkrtest at pbkrtest's W (max rel):", fmt(check), "\n")
  stopifnot(check < 1e-10, max(abs(unlist(P) - unlist(Pd))) < 1e-10 * max(abs(unlist(Pd))))
  PhiA <- phi_adj(W_obs)

  say("theta", theta)
  say("minus2_reml", -2 * reml(theta))
  say("beta", beta)
  say("se_model", sqrt(diag(Phi)))
  say("pbk_phi_adj", as.vector(as.matrix(PhiA_pbk)))   # column-major p x p, W = inverse expected information
  say("kr_se", sqrt(diag(PhiA)))                       # W = inverse observed information (SAS, mmrm)
  say("kr_phi_adj", as.vector(PhiA))
  attr(PhiA, "P") <- P
  attr(PhiA, "W") <- W_obs
  for (cn in names(contrasts)) {
    L <- matrix(contrasts[[cn]], nrow = 1)
    est <- drop(L %*% beta)
    se <- sqrt(drop(L %*% PhiA %*% t(L)))
    df <- pbkrtest:::Lb_ddf(L, Phi, PhiA)
    say(paste0("c_", cn), c(est, se, df, 2 * pt(-abs(est / se), df)))   # estimate, KR se, KR df, p
  }
  for (fn in names(ftests)) {
    L <- ftests[[fn]]
    kr <- pbkrtest:::.KR_adjust(PhiA, Phi, L, beta, rep(0, length(beta)))
    say(paste0("f_", fn), c(kr$Fstat, kr$ndf, kr$ddf, kr$F.scaling, kr$p.value))
  }
}

fit_gls <- function(fml, d) {
  gls(fml, data = d, method = "REML", correlation = corSymm(form = ~ visit | id),
      weights = varIdent(form = ~ 1 | time),
      control = glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12, msTol = 1e-14))
}

# ---- 1. fev_data (R mmrm), FEV1 ~ ARMCD, as SAS's DDFM=KR run ----------------------------------------
d <- read.csv("tests/validation/data/mmrm_kr_fev.csv")
d <- d[!is.na(d$FEV1), ]
d$id <- d$USUBJID
d$time <- factor(d$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
d$visit <- as.integer(d$time)
d$trt <- as.numeric(d$ARMCD == "TRT")
d <- d[order(as.integer(sub("PT", "", d$id)), d$visit), ]
X <- cbind(intercept = 1, trt = d$trt)
fit <- fit_gls(FEV1 ~ trt, d)
kr_reference("fev", X, d$FEV1, d$id, d$visit, 4, fit,
             contrasts = list(trt = c(0, 1), mean_pbo = c(1, 0), mean_trt = c(1, 1)),
             ftests = list(both = rbind(c(0, 1), c(1, 0)), trt = rbind(c(0, 1))))

# ---- 2. synthetic trials, imrstats' default design ----------------------------------------------------
trial_design <- function(name, times) {
  d <- read.csv(file.path("tests/validation/data", paste0("mmrm_", name, ".csv")))
  d$time <- factor(d$time, levels = times)
  d$visit <- as.integer(d$time)
  d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
  d <- d[!is.na(d$y), ]
  d <- d[order(d$id, d$visit), ]
  fml <- y ~ 0 + time + time:arm + time:baseline + site + sex + age + diagnosis
  fit <- fit_gls(fml, d)
  X <- model.matrix(fml, d)
  # imrstats' column order and names
  ours <- colnames(X)
  for (t in times) {
    ours[colnames(X) == paste0("time", t)] <- paste0("time[", t, "]")
    ours[colnames(X) == paste0("time", t, ":armIMR")] <- paste0("arm[IMR]:time[", t, "]")
    ours[colnames(X) == paste0("time", t, ":baseline")] <- paste0("baseline:time[", t, "]")
  }
  ours <- sub("^(site|sex|diagnosis)(.+)$", "\\1[\\2]", ours)
  colnames(X) <- ours
  order_ours <- c(paste0("time[", times, "]"), paste0("arm[IMR]:time[", times, "]"),
                  paste0("baseline:time[", times, "]"), "site[site_b]", "site[site_c]", "sex[male]", "age",
                  "diagnosis[schizophrenia]")
  X <- X[, order_ours]
  cat("names = [", paste0('"', colnames(X), '"', collapse = ", "), "]\n", sep = "")
  # emmeans' default reference grid (numeric covariates at their mean over the analysed rows,
  # factors equally weighted), as imrstats.trial.mmrm.reference_grid
  grid_row <- function(t, treated) {
    L <- setNames(numeric(ncol(X)), colnames(X))
    L[paste0("time[", t, "]")] <- 1
    L[paste0("arm[IMR]:time[", t, "]")] <- treated
    L[paste0("baseline:time[", t, "]")] <- mean(d$baseline)
    L[c("site[site_b]", "site[site_c]")] <- 1 / 3
    L["sex[male]"] <- 1 / 2
    L["age"] <- mean(d$age)
    L["diagnosis[schizophrenia]"] <- 1 / 2
    L
  }
  contrasts <- list()
  for (t in times) {
    contrasts[[paste0("diff_", t)]] <- grid_row(t, 1) - grid_row(t, 0)
    contrasts[[paste0("mean_TAU_", t)]] <- grid_row(t, 0)
    contrasts[[paste0("mean_IMR_", t)]] <- grid_row(t, 1)
  }
  joint <- do.call(rbind, lapply(times, function(t) grid_row(t, 1) - grid_row(t, 0)))
  covs <- rbind(c(rep(0, ncol(X) - 5), 1, 1, 0, 0, 0), c(rep(0, ncol(X) - 5), 0, 0, 1, 0, 0),
                c(rep(0, ncol(X) - 5), 0, 0, 0, 1, 0))   # site_b + site_c, sex, age
  kr_reference(name, X, d$y, d$id, d$visit, length(times), fit, contrasts,
               ftests = list(arm_all_visits = joint, covariates = covs))
}

trial_design("missing", c("post", "fu12"))
trial_design("three_visits", c("post", "fu6", "fu12"))
