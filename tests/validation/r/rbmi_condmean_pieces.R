# Reference numbers for the pieces of reference-based conditional mean imputation (Wolbers et al. 2022;
# Carpenter, Roger & Kenward 2013) on the antidepressant trial data (rbmi's example data set), written to
# tests/validation/data/rbmi_condmean_pieces_reference.json and checked by
# tests/validation/test_rbmi_condmean.py.
#
# Run from the repository root:  Rscript tests/validation/r/rbmi_condmean_pieces.R [out.json]
# Needs jsonlite only (base R's lm and model.matrix do the rest); rbmi itself is not used: every step is
# written out here from the papers' definitions, independently of the Python code.
#
# Steps:
#  1. expand data/examples/antidepressant/antidepressant.csv (608 observed rows) to one row per patient x visit
#     (4, 5, 6, 7), CHANGE missing where a row is absent;
#  2. ICE of each patient at the first visit of the final run of missing visits (patient 3618, who misses only
#     visit 5, has none: that value is imputed under MAR);
#  3. the imputation model's parameters: Sigma = the REML covariance pinned in
#     tests/validation/data/antidepressant_mmrm_reference.json (model change_separate_slopes,
#     CHANGE ~ BASVAL * VISIT + THERAPY * VISIT, at the exact REML maximum; no patient has observed values after
#     the ICE, so the fit without post-ICE values is that MAR fit) and beta = its GLS estimate given Sigma,
#     computed here (and checked against the pinned fixed effects);
#  4. for each strategy s in MAR, JR, CR, CIR, LMCF applied to every ICE (reference arm PLACEBO): each patient's
#     mean vector under s, the conditional mean of every missing value given the patient's observed values, the
#     completed data;
#  5. ANCOVA per visit, lm(CHANGE ~ THERAPY + BASVAL) with PLACEBO as reference level: the DRUG - PLACEBO
#     coefficient and the LS means (the model's mean with every patient's BASVAL and the arm set, i.e. BASVAL at
#     its mean; rbmi's "counterfactual" weights);
#  6. the JR / CIR joint covariance when the own arm's and the reference's covariances differ (Carpenter et al.
#     2013), for Sigma_own = the REML Sigma and Sigma_ref = Sigma + diag(1, 2, 3, 4), ICE at the third visit.

suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[1] else "tests/validation/data/rbmi_condmean_pieces_reference.json"
VISITS <- c("4", "5", "6", "7")
T <- length(VISITS)

d <- read.csv("data/examples/antidepressant/antidepressant.csv",
              colClasses = c(PATIENT = "character", VISIT = "character", THERAPY = "character"))
stopifnot(nrow(d) == 608)
ref_json <- fromJSON("tests/validation/data/antidepressant_mmrm_reference.json")
model <- ref_json$models$change_separate_slopes
Sigma <- as.matrix(model$covariance)

# ---- 1. expand ------------------------------------------------------------------------------------------------
patients <- sort(unique(d$PATIENT))
per <- d[!duplicated(d$PATIENT), c("PATIENT", "THERAPY", "BASVAL")]
per <- per[match(patients, per$PATIENT), ]
Y <- matrix(NA_real_, length(patients), T, dimnames = list(patients, VISITS))
Y[cbind(match(d$PATIENT, patients), match(d$VISIT, VISITS))] <- d$CHANGE
n <- length(patients)

# ---- 2. ICE at the first visit of the final missing run ---------------------------------------------------------
last_obs <- apply(!is.na(Y), 1, function(o) if (any(o)) max(which(o)) else 0L)
ice_index <- ifelse(last_obs < T, last_obs + 1L, T + 1L)  # 1-based; T + 1 = no ICE
stopifnot(ice_index[patients == "3618"] == T + 1L, sum(ice_index <= T) == 43)

# ---- 3. beta given Sigma --------------------------------------------------------------------------------------
long <- data.frame(PATIENT = rep(patients, each = T), VISIT = factor(rep(VISITS, n), levels = VISITS),
                   THERAPY = factor(rep(per$THERAPY, each = T), levels = c("PLACEBO", "DRUG")),
                   BASVAL = rep(per$BASVAL, each = T), CHANGE = as.vector(t(Y)))
form <- ~ BASVAL * VISIT + THERAPY * VISIT
X_own <- model.matrix(form, long)
long_ref <- long
long_ref$THERAPY <- factor("PLACEBO", levels = c("PLACEBO", "DRUG"))
X_ref <- model.matrix(form, long_ref)
obs <- !is.na(long$CHANGE)
p <- ncol(X_own)
XtWX <- matrix(0, p, p)
XtWy <- numeric(p)
for (i in seq_len(n)) {
  rows <- ((i - 1) * T + 1):(i * T)
  o <- obs[rows]
  if (!any(o)) next
  Xi <- X_own[rows[o], , drop = FALSE]
  Wi <- solve(Sigma[o, o, drop = FALSE])
  XtWX <- XtWX + t(Xi) %*% Wi %*% Xi
  XtWy <- XtWy + t(Xi) %*% Wi %*% long$CHANGE[rows[o]]
}
beta <- as.vector(solve(XtWX, XtWy))
names(beta) <- colnames(X_own)
pinned <- unlist(model$fixed_effects)
stopifnot(max(abs(beta[names(pinned)] - pinned)) < 1e-8 * max(abs(pinned)))
MU_own <- matrix(X_own %*% beta, n, T, byrow = TRUE, dimnames = list(patients, VISITS))
MU_ref <- matrix(X_ref %*% beta, n, T, byrow = TRUE, dimnames = list(patients, VISITS))

# ---- 4. strategies and conditional means ----------------------------------------------------------------------
strategy_mean <- function(s, own, ref, k) {  # k: 1-based first visit affected; T + 1 = none
  if (k > T || s == "MAR") return(own)
  post <- seq_len(T) >= k
  if (s == "CR") return(ref)
  if (s == "JR") return(ifelse(post, ref, own))
  if (s == "CIR") {
    if (k == 1) return(ref)
    return(ifelse(post, own[k - 1] + ref - ref[k - 1], own))
  }
  if (s == "LMCF") {
    stopifnot(k > 1)
    return(ifelse(post, own[k - 1], own))
  }
  stop("unknown strategy")
}
conditional_fill <- function(y, mu, S) {
  m <- is.na(y)
  if (!any(m)) return(y)
  if (all(m)) return(mu)
  o <- !m
  y[m] <- mu[m] + S[m, o, drop = FALSE] %*% solve(S[o, o, drop = FALSE], y[o] - mu[o])
  y
}
ancova <- function(Yc) {
  out <- list()
  for (k in seq_len(T)) {
    dat <- data.frame(y = Yc[, k], THERAPY = factor(per$THERAPY, levels = c("PLACEBO", "DRUG")),
                      BASVAL = per$BASVAL)
    fit <- lm(y ~ THERAPY + BASVAL, data = dat)
    b <- coef(fit)
    lsm_placebo <- unname(b[1] + b[3] * mean(dat$BASVAL))
    out[[VISITS[k]]] <- list(contrast_drug_minus_placebo = unname(b[2]), lsmean_placebo = lsm_placebo,
                             lsmean_drug = lsm_placebo + unname(b[2]))
  }
  out
}

strategies <- c("MAR", "JR", "CR", "CIR", "LMCF")
results <- list()
for (s in strategies) {
  Yc <- Y
  means <- list()
  for (i in seq_len(n)) {
    mu <- strategy_mean(if (ice_index[i] <= T) s else "MAR", MU_own[i, ], MU_ref[i, ], ice_index[i])
    Yc[i, ] <- conditional_fill(Y[i, ], mu, Sigma)
    if (ice_index[i] <= T) means[[patients[i]]] <- unname(mu)
  }
  miss <- which(is.na(Y), arr.ind = TRUE)
  imputed <- data.frame(id = patients[miss[, 1]], visit = VISITS[miss[, 2]], value = Yc[miss])
  imputed <- imputed[order(imputed$id, imputed$visit), ]
  rownames(imputed) <- NULL
  results[[s]] <- list(ancova = ancova(Yc), imputed = imputed, strategy_means = means)
}

# ---- 6. joint covariance with different own and reference covariances -------------------------------------------
compose <- function(S_own, S_ref, k) {  # k: number of pre-ICE visits
  a <- seq_len(k)
  b <- (k + 1):T
  R11i <- solve(S_ref[a, a])
  out <- matrix(0, T, T)
  out[a, a] <- S_own[a, a]
  out[b, a] <- S_ref[b, a] %*% R11i %*% S_own[a, a]
  out[a, b] <- t(out[b, a])
  out[b, b] <- S_ref[b, b] - S_ref[b, a] %*% R11i %*% (S_ref[a, a] - S_own[a, a]) %*% R11i %*% S_ref[a, b]
  out
}
S_ref2 <- Sigma + diag(1:4)

out <- list(
  meta = list(
    generated_by = "tests/validation/r/rbmi_condmean_pieces.R",
    r_version = R.version.string,
    jsonlite_version = as.character(packageVersion("jsonlite")),
    data = "data/examples/antidepressant/antidepressant.csv",
    parameters = paste("Sigma: antidepressant_mmrm_reference.json, model change_separate_slopes (REML maximum);",
                       "beta: GLS given Sigma on the 608 observed rows"),
    strategies = "applied to every ICE; reference arm PLACEBO; patients without an ICE (incl. 3618) MAR",
    analysis = "lm(CHANGE ~ THERAPY + BASVAL) per visit on the completed data, PLACEBO the reference level"
  ),
  n_patients = n,
  ice = data.frame(id = patients[ice_index <= T], visit = VISITS[ice_index[ice_index <= T]]),
  beta = as.list(beta),
  sigma = Sigma,
  results = results,
  composed_covariance = list(sigma_own = Sigma, sigma_ref = S_ref2, n_pre_ice = 2L,
                             joint = compose(Sigma, S_ref2, 2L))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
