# Reference numbers for the delta adjustment of reference-based conditional mean imputation (rbmi's
# delta_template() and analyse(delta = ); Cro et al. 2020) on the antidepressant trial data (rbmi's example data
# set), written to tests/validation/data/rbmi_delta_reference.json and checked by
# tests/validation/test_rbmi_delta.py.
#
# Run from the repository root:  Rscript tests/validation/r/rbmi_delta.R [out.json]
# Needs jsonlite only (base R's lm and model.matrix do the rest); rbmi itself is not used: every step is
# written out here from the definitions (rbmi's documentation of delta_template, Gower-Page et al. 2022),
# independently of the Python code.
#
# Steps:
#  1. expand data/examples/antidepressant/antidepressant.csv to one row per patient x visit (4, 5, 6, 7), CHANGE
#     missing where a row is absent; ICE of each patient at the first visit of the final run of missing visits
#     (patient 3618, who misses only visit 5, has none: that value is imputed under MAR);
#  2. the imputation model's parameters at the REML maximum: Sigma pinned in
#     tests/validation/data/antidepressant_mmrm_reference.json (model change_separate_slopes) and beta its GLS
#     estimate given Sigma;
#  3. conditional mean imputation under JR (reference PLACEBO) and under MAR for every ICE;
#  4. deltas: a on every missing DRUG value at and after the ICE, c on every missing PLACEBO value at and after the
#     ICE (or, cumulative, a and c times the number of visits since the ICE, 1 at the ICE visit); intermittent
#     missing values (no ICE) are not shifted, observed values never;
#  5. ANCOVA per visit, lm(CHANGE ~ THERAPY + BASVAL), PLACEBO the reference level: the DRUG - PLACEBO contrast;
#  6. rbmi's delta/dlag rule (documentation of delta_template, "Details"): with delta = (5, 6, 7, 8) and
#     dlag = (1, 2, 3, 4), each patient's offset at a visit at or after the ICE is the cumulative sum of
#     dlag[j] * delta[visit], j = 0 at the ICE visit; 0 on observed values. Every non-zero cell is written.

suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args) >= 1) args[1] else "tests/validation/data/rbmi_delta_reference.json"
VISITS <- c("4", "5", "6", "7")
T <- length(VISITS)

d <- read.csv("data/examples/antidepressant/antidepressant.csv",
              colClasses = c(PATIENT = "character", VISIT = "character", THERAPY = "character"))
stopifnot(nrow(d) == 608)
model <- fromJSON("tests/validation/data/antidepressant_mmrm_reference.json")$models$change_separate_slopes
Sigma <- as.matrix(model$covariance)

# ---- 1. expand, ICE -------------------------------------------------------------------------------------------
patients <- sort(unique(d$PATIENT))
per <- d[!duplicated(d$PATIENT), c("PATIENT", "THERAPY", "BASVAL")]
per <- per[match(patients, per$PATIENT), ]
Y <- matrix(NA_real_, length(patients), T, dimnames = list(patients, VISITS))
Y[cbind(match(d$PATIENT, patients), match(d$VISIT, VISITS))] <- d$CHANGE
n <- length(patients)
last_obs <- apply(!is.na(Y), 1, function(o) if (any(o)) max(which(o)) else 0L)
ice_index <- ifelse(last_obs < T, last_obs + 1L, T + 1L)  # 1-based; T + 1 = no ICE
stopifnot(ice_index[patients == "3618"] == T + 1L, sum(ice_index <= T) == 43)

# ---- 2. beta given Sigma --------------------------------------------------------------------------------------
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
  Xi <- X_own[rows[o], , drop = FALSE]
  Wi <- solve(Sigma[o, o, drop = FALSE])
  XtWX <- XtWX + t(Xi) %*% Wi %*% Xi
  XtWy <- XtWy + t(Xi) %*% Wi %*% long$CHANGE[rows[o]]
}
beta <- as.vector(solve(XtWX, XtWy))
MU_own <- matrix(X_own %*% beta, n, T, byrow = TRUE)
MU_ref <- matrix(X_ref %*% beta, n, T, byrow = TRUE)

# ---- 3. conditional mean imputation ---------------------------------------------------------------------------
complete_under <- function(strategy) {
  Yc <- Y
  for (i in seq_len(n)) {
    k <- ice_index[i]
    mu <- MU_own[i, ]
    if (strategy == "JR" && k <= T) mu[k:T] <- MU_ref[i, k:T]
    m <- is.na(Y[i, ])
    if (!any(m)) next
    o <- !m
    Yc[i, m] <- mu[m] + Sigma[m, o, drop = FALSE] %*% solve(Sigma[o, o, drop = FALSE], Y[i, o] - mu[o])
  }
  Yc
}

# ---- 4., 5. deltas and the ANCOVA -----------------------------------------------------------------------------
unit_shift <- function(cumulative) {
  U <- matrix(0, n, T)
  for (i in seq_len(n)) {
    k <- ice_index[i]
    if (k > T) next
    for (j in k:T) if (is.na(Y[i, j])) U[i, j] <- if (cumulative) j - k + 1 else 1
  }
  U
}
drug <- per$THERAPY == "DRUG"
contrasts <- function(Yc) {
  sapply(seq_len(T), function(k) {
    dat <- data.frame(y = Yc[, k], THERAPY = factor(per$THERAPY, levels = c("PLACEBO", "DRUG")),
                      BASVAL = per$BASVAL)
    unname(coef(lm(y ~ THERAPY + BASVAL, data = dat))[2])
  })
}
cells <- list(c(0, 0), c(2, 0), c(0, -3), c(1.5, 2.5), c(-4, 6))
results <- list()
for (strategy in c("JR", "MAR")) {
  Yc <- complete_under(strategy)
  for (cumulative in c(FALSE, TRUE)) {
    U <- unit_shift(cumulative)
    for (cell in cells) {
      a <- cell[1]
      c <- cell[2]
      shifted <- Yc + U * ifelse(drug, a, c)
      results[[length(results) + 1]] <- list(strategy = strategy, cumulative = cumulative, delta_drug = a,
                                             delta_placebo = c, contrast = as.list(setNames(contrasts(shifted),
                                                                                            VISITS)))
    }
  }
}

# ---- 6. rbmi's delta / dlag rule ------------------------------------------------------------------------------
delta <- c(5, 6, 7, 8)
dlag <- c(1, 2, 3, 4)
lagged <- list()
for (i in seq_len(n)) {
  k <- ice_index[i]
  if (k > T) next
  post <- k:T
  offset <- cumsum(dlag[seq_along(post)] * delta[post])
  for (j in seq_along(post)) {
    if (is.na(Y[i, post[j]])) {
      lagged[[length(lagged) + 1]] <- list(id = patients[i], visit = VISITS[post[j]], delta = offset[j])
    }
  }
}

out <- list(
  meta = list(
    generated_by = "tests/validation/r/rbmi_delta.R",
    r_version = R.version.string,
    jsonlite_version = as.character(packageVersion("jsonlite")),
    data = "data/examples/antidepressant/antidepressant.csv",
    parameters = paste("Sigma: antidepressant_mmrm_reference.json, model change_separate_slopes (REML maximum);",
                       "beta: GLS given Sigma on the 608 observed rows"),
    deltas = paste("delta_drug on every missing DRUG value at and after the ICE, delta_placebo on PLACEBO's;",
                   "cumulative: times the number of visits since the ICE (1 at the ICE visit)"),
    analysis = "lm(CHANGE ~ THERAPY + BASVAL) per visit on the shifted completed data, PLACEBO the reference level"
  ),
  n_patients = n,
  n_shifted = list(DRUG = sum(unit_shift(FALSE)[drug, ] != 0), PLACEBO = sum(unit_shift(FALSE)[!drug, ] != 0)),
  results = results,
  lagged_template = list(delta = delta, dlag = dlag, cells = lagged)
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_path)
cat("wrote", out_path, "\n")
