# Reference values for tests/validation/test_trial_extra_vs_r.py (imrstats.trial.secondary: diagnostics, within-group change, subscales, attendance, CACE).
# Data: tests/validation/data/trial_extra_<outcome>.csv (made by trial_extra_make_data.py). Run from the
# repository root:   Rscript tests/validation/r/trial_extra.R
# Needs nlme, car, AER, numDeriv.
#
# 1. complete-case ANCOVA diagnostics: lm(y_t ~ arm + baseline + site + sex + age + diagnosis):
#    cooks.distance, shapiro.test(residuals), cor.test(|residuals|, fitted, method = "spearman",
#    exact = FALSE) and anova(fit, fit + I((baseline - mean)^2)).
# 2. MMRM diagnostics on the observed data: gls(y ~ 0 + time + time:arm + time:baseline + covariates,
#    corSymm(~ visit | id) + varIdent(~ 1 | time), REML), polished to the exact REML maximum (see polish()):
#    normalized residuals (shapiro.test, Spearman with fitted), Cook's distance D_i = (b - b_(i))' vcov^-1 (b - b_(i)) / p by (a) GLS without participant i
#    at the fitted covariance (matrix algebra) and (b) a loop of delete-one-participant gls refits; the
#    centred quadratic baseline term's estimate and SE.
# 3. within-group change: gls(y ~ 0 + time + time:arm + baseline), fu12 - post per arm and their
#    difference; Satterthwaite df by the definition (written-out REML, numDeriv), as in mmrm.R.
# 4. subscale ANCOVA: lm(fu12 ~ arm + post), car::Anova(type = 3) F for arm.
# 5. attendance (IMR arm): anova(lm(fu12 ~ sessions)), lm(fu12 ~ sessions + baseline),
#    lm(fu12 ~ (sessions > 10) + baseline).
# 6. CACE: AER::ivreg(fu12 ~ complied + baseline + covs | arm + baseline + covs), complied = IMR & sessions > 10.

suppressPackageStartupMessages({
  library(nlme)
  library(car)
  library(AER)
  library(numDeriv)
})
f <- function(x) sprintf("%.15g", x)
say <- function(...) cat(..., "\n")
covs <- "site + sex + age + diagnosis"
ctl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12, msTol = 1e-14)
cat("# R", R.version$major, R.version$minor, "nlme", format(packageVersion("nlme")), "car",
    format(packageVersion("car")), "AER", format(packageVersion("AER")), "\n")

read <- function(key) {
  d <- read.csv(sprintf("tests/validation/data/trial_extra_%s.csv", key), stringsAsFactors = TRUE)
  d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
  d[order(as.character(d$id), method = "radix"), ]
}

# ------------------------------------------------------------------ 1. complete-case diagnostics
cc_diag <- function(key, tp) {
  d <- read(key)
  cc <- d[!is.na(d[[tp]]) & !is.na(d$baseline), ]
  fit <- lm(as.formula(paste(tp, "~ arm + baseline +", covs)), data = cc)
  cd <- cooks.distance(fit)
  n <- nrow(cc)
  sw <- shapiro.test(residuals(fit))
  sp <- suppressWarnings(cor.test(abs(residuals(fit)), fitted(fit), method = "spearman", exact = FALSE))
  cc$bq <- (cc$baseline - mean(cc$baseline))^2
  a <- anova(fit, update(fit, . ~ . + bq, data = cc))
  say("cc", key, tp, "n", n, "cooks_max", f(max(cd)), "cooks_sum", f(sum(cd)), "cooks_first3", f(cd[1:3]))
  say("cc", key, tp, "cooks_rows", which(cd > 4 / n))
  say("cc", key, tp, "shapiro", f(sw$statistic), f(sw$p.value), "spearman", f(sp$estimate), f(sp$p.value),
      "quadratic_F", f(a$F[2]), f(a$`Pr(>F)`[2]), "df2", a$Res.Df[2])
}
for (tp in c("post", "fu12")) cc_diag("gaf_f", tp)
cc_diag("panss_total", "fu12")

# ------------------------------------------------------------------ 2. MMRM diagnostics
long_data <- function(key, extra_covs = "site + sex + age + diagnosis") {
  d <- read(key)
  d <- d[!is.na(d$baseline) & (!is.na(d$post) | !is.na(d$fu12)), ]
  long <- rbind(transform(d, time = "post", y = post), transform(d, time = "fu12", y = fu12))
  long$time <- factor(long$time, levels = c("post", "fu12"))
  long$visit <- as.integer(long$time)
  long <- long[!is.na(long$y), ]
  long$id <- as.character(long$id)
  long[order(long$id, long$visit, method = "radix"), ]
}
fit_gls <- function(fml, data) {
  fit <- gls(fml, data = data, method = "REML", correlation = corSymm(form = ~ visit | id),
             weights = varIdent(form = ~ 1 | time), control = ctl)
  for (restart in 1:5) {  # restart from its own estimate until logLik stops rising (as mmrm.R)
    before <- as.numeric(logLik(fit))
    fit <- gls(fml, data = data, method = "REML",
               correlation = corSymm(value = coef(fit$modelStruct$corStruct, unconstrained = FALSE),
                                     form = ~ visit | id),
               weights = varIdent(value = coef(fit$modelStruct$varStruct, unconstrained = FALSE),
                                  form = ~ 1 | time), control = ctl)
    if (as.numeric(logLik(fit)) - before < 1e-10) break
  }
  fit
}
# The exact REML maximum: gls stops ~1e-8 (relative) short of it, which moves tail p-values (Shapiro-Wilk)
# by ~1e-6; Newton steps with numDeriv's gradient and Hessian of the written-out REML log-likelihood
# (as in mmrm.R) polish the gls estimate. Returns Sigma, beta, vcov, the inverse observed REML
# information A, and Satterthwaite df for rows of L: df = 2 (c'Vc)^2 / (g' A g).
polish <- function(fml, data, fit) {
  X <- model.matrix(fml, data); y <- data$y; vis <- data$visit
  blocks <- split(seq_along(y), data$id)
  pairs <- rbind(c(1, 1), c(2, 1), c(2, 2))
  to_sigma <- function(th) matrix(c(th[1], th[2], th[2], th[3]), 2)
  parts <- function(th) {
    S <- to_sigma(th); XWX <- 0; XWy <- 0; yWy <- 0; logdet <- 0
    for (r in blocks) {
      Si <- S[vis[r], vis[r], drop = FALSE]; Wi <- solve(Si); Xi <- X[r, , drop = FALSE]
      XWX <- XWX + t(Xi) %*% Wi %*% Xi; XWy <- XWy + t(Xi) %*% Wi %*% y[r]
      yWy <- yWy + sum(y[r] * (Wi %*% y[r])); logdet <- logdet + as.numeric(determinant(Si)$modulus)
    }
    list(XWX = XWX, XWy = XWy, yWy = yWy, logdet = logdet)
  }
  reml <- function(th) {
    q <- parts(th); beta <- solve(q$XWX, q$XWy)
    -0.5 * ((length(y) - ncol(X)) * log(2 * pi) + q$logdet + as.numeric(determinant(q$XWX)$modulus) +
              q$yWy - sum(q$XWy * beta))
  }
  S <- unclass(getVarCov(fit, individual = names(which(table(data$id) == 2))[1]))
  th <- S[pairs]
  for (it in 1:30) {
    step <- solve(-hessian(reml, th), grad(reml, th))
    if (max(abs(step) / abs(th)) < 1e-8) break
    th <- th + step
  }
  A <- solve(-hessian(reml, th))
  q <- parts(th); V <- solve(q$XWX); beta <- as.vector(V %*% q$XWy)
  vc <- function(t2) solve(parts(t2)$XWX)
  df <- function(L) apply(L, 1, function(cc) {
    v <- function(t2) as.numeric(t(cc) %*% vc(t2) %*% cc)
    gr <- jacobian(v, th)
    2 * v(th)^2 / as.numeric(gr %*% A %*% t(gr))
  })
  list(S = to_sigma(th), beta = beta, V = V, X = X, df = df)
}
mmrm_diag <- function(key, refit_loop = TRUE) {
  long <- long_data(key)
  fml <- as.formula(paste("y ~ 0 + time + time:arm + time:baseline +", covs))
  fit <- fit_gls(fml, long)
  ids <- unique(long$id)
  n <- length(ids)
  z_gls <- residuals(fit, type = "normalized")
  P <- polish(fml, long, fit)
  S <- P$S; b <- P$beta; V <- P$V; X <- P$X; p <- length(b)
  fitted_ <- as.vector(X %*% b)
  blocks <- split(seq_len(nrow(long)), factor(long$id, levels = ids))
  z <- numeric(nrow(long))  # normalized residuals L^-1 (y - X b), S[O, O] = L L'
  for (r in blocks) z[r] <- forwardsolve(t(chol(S[long$visit[r], long$visit[r], drop = FALSE])),
                                         long$y[r] - fitted_[r])
  cat("# nlme normalized residuals vs L^-1 r at the polished fit: max abs difference",
      f(max(abs(z - z_gls))), "\n")
  sw <- shapiro.test(z)
  sp <- cor.test(abs(z), fitted_, method = "spearman", exact = FALSE)
  say("mmrm", key, "n", n, "nobs", nrow(long), "normres_first4", f(z[1:4]), "fitted_first4", f(fitted_[1:4]))
  say("mmrm", key, "shapiro", f(sw$statistic), f(sw$p.value), "spearman", f(sp$estimate), f(sp$p.value))
  # (a) fixed covariance: GLS without participant i at the fitted Sigma
  parts <- lapply(blocks, function(r) {
    W <- solve(S[long$visit[r], long$visit[r], drop = FALSE])
    list(xwx = t(X[r, , drop = FALSE]) %*% W %*% X[r, , drop = FALSE],
         xwy = t(X[r, , drop = FALSE]) %*% W %*% long$y[r])
  })
  XWX <- Reduce(`+`, lapply(parts, `[[`, "xwx"))
  XWy <- Reduce(`+`, lapply(parts, `[[`, "xwy"))
  Vi <- solve(V)
  dfix <- sapply(parts, function(q) {
    d <- b - solve(XWX - q$xwx, XWy - q$xwy)
    as.numeric(t(d) %*% Vi %*% d) / p
  })
  say("mmrm", key, "cooks_fixed_max", f(max(dfix)), "sum", f(sum(dfix)), "first3", f(dfix[1:3]))
  say("mmrm", key, "cooks_fixed_rows", which(dfix > 4 / n))
  if (refit_loop) {
    # (b) delete-one-participant gls refits (fresh fit + restarts: a refit started at the full fit's
    # covariance lets nlminb stop early, ~1e-4 short of the maximum in D)
    dref <- sapply(ids, function(i) {
      fi <- fit_gls(fml, long[long$id != i, ])
      d <- b - coef(fi)
      as.numeric(t(d) %*% Vi %*% d) / p
    })
    say("mmrm", key, "cooks_refit_max", f(max(dref)), "sum", f(sum(dref)), "first3", f(dref[1:3]),
        "which_max", which.max(dref))
    say("mmrm", key, "cooks_refit_rows", which(dref > 4 / n))
  }
  # centred quadratic baseline term
  bl <- tapply(long$baseline, long$id, `[`, 1)
  long$baseline_sq <- (long$baseline - mean(bl))^2
  fmq <- update(fml, . ~ . + baseline_sq)
  Pq <- polish(fmq, long, fit_gls(fmq, long))
  j <- which(colnames(Pq$X) == "baseline_sq")
  say("mmrm", key, "quadratic", f(Pq$beta[j]), f(sqrt(Pq$V[j, j])), "df", f(Pq$df(diag(ncol(Pq$X))[j, , drop = FALSE])))
}
mmrm_diag("gaf_f")
mmrm_diag("panss_total", refit_loop = FALSE)

# ------------------------------------------------------------------ 3. within-group change
within <- function(key) {
  long <- long_data(key)
  fml <- y ~ 0 + time + time:arm + baseline
  fit <- fit_gls(fml, long)
  nm <- names(coef(fit))
  L <- matrix(0, 3, length(nm), dimnames = list(c("IMR", "TAU", "IMR - TAU"), nm))
  L[1:2, "timefu12"] <- 1; L[1:2, "timepost"] <- -1
  L[c(1, 3), "timefu12:armIMR"] <- 1; L[c(1, 3), "timepost:armIMR"] <- -1
  P <- polish(fml, long, fit)
  cat("# gls estimate", f(L %*% coef(fit)), "se", f(sqrt(diag(L %*% vcov(fit) %*% t(L)))), "\n")
  say("within", key, "estimate", f(L %*% P$beta), "se", f(sqrt(diag(L %*% P$V %*% t(L)))), "df", f(P$df(L)))
}
within("gaf_f")
within("panss_pos")

# ------------------------------------------------------------------ 4. subscale ANCOVA
for (key in c("panss_pos", "psp_selfcare")) {
  d <- read(key)
  cc <- d[!is.na(d$fu12) & !is.na(d$post), ]
  fit <- lm(fu12 ~ arm + post, data = cc)
  a <- Anova(fit, type = 3)
  s <- summary(fit)$coefficients["armIMR", ]
  say("subscale", key, "n", nrow(cc), "estimate", f(s[1]), "se", f(s[2]), "F", f(a["arm", "F value"]),
      "p", f(a["arm", "Pr(>F)"]), "df2", fit$df.residual,
      "mean_imr", f(mean(cc$fu12[cc$arm == "IMR"])), "sd_tau", f(sd(cc$fu12[cc$arm == "TAU"])))
}

# ------------------------------------------------------------------ 5. attendance dose-response
for (key in c("gaf_f", "panss_total")) {
  d <- read(key)
  imr <- d[d$arm == "IMR" & !is.na(d$fu12), ]
  a <- anova(lm(fu12 ~ sessions_attended, data = imr))
  say("attend", key, "anova_F", f(a[1, "F value"]), "p", f(a[1, "Pr(>F)"]), "df2", a[2, "Df"])
  imr <- imr[!is.na(imr$baseline), ]
  s <- summary(lm(fu12 ~ sessions_attended + baseline, data = imr))$coefficients[2, ]
  say("attend", key, "slope_adj", f(s), "n", nrow(imr))
  imr$high <- as.numeric(imr$sessions_attended > 10)
  s <- summary(lm(fu12 ~ high + baseline, data = imr))$coefficients[2, ]
  say("attend", key, "split_adj", f(s))
}

# ------------------------------------------------------------------ 6. CACE
for (key in c("gaf_f", "panss_total")) {
  d <- read(key)
  d <- d[!is.na(d$fu12) & !is.na(d$baseline), ]
  d$complied <- as.numeric(d$arm == "IMR" & d$sessions_attended > 10)
  for (rhs in c(paste("baseline +", covs), "baseline")) {
    fit <- ivreg(as.formula(paste("fu12 ~ complied +", rhs, "| arm +", rhs)), data = d)
    s <- summary(fit)$coefficients["complied", ]
    say("cace", key, if (rhs == "baseline") "baseline_only" else "covariates", f(s), "df", fit$df.residual,
        "n", nrow(d))
  }
}
