# Reference values for imrstats.meta.stage (run_meta_stage on the curated published data) from R metafor.
# Run from the repository root:
#   Rscript tests/validation/r/meta_stage.R > /tmp/meta_stage_ref.txt
# Prints Python dict entries (outcome, part, method, field, index): value, pasted into
# tests/validation/test_meta_stage_vs_r.py (the test suite never runs R).
# Inputs: tests/validation/data/meta_stage_outcomes.csv and meta_stage_rates.csv (copies of
# data/published/published_outcomes.csv and implementation_rates.csv; the rates copy refreshed when the
# curated table gained its denominator columns).
# The rows each outcome pools are named here by hand (the stage's selection rule is a design choice, not a
# statistic; the Python test checks the stage picks these rows). The effect sizes are computed with metafor's
# own escalc inputs (means/SDs; di = Cohen's d; ti = the t of a two-sided p (metafor 3.8 has no pi=), or
# sqrt(F) for eta squared) and the Wald-CI formula for the odds ratio (metafor 3.8 has no conv.wald),
# independently of imrstats.meta.effect_sizes.
suppressMessages(library(metafor))
cat("# metafor", as.character(packageVersion("metafor")), "on", R.version.string, "\n")
po <- read.csv("tests/validation/data/meta_stage_outcomes.csv", stringsAsFactors = FALSE)
rates <- read.csv("tests/validation/data/meta_stage_rates.csv", stringsAsFactors = FALSE)
num <- function(x) ifelse(is.na(x), "nan", sprintf("%.15g", x))
emit <- function(outcome, part, method, field, values) {
  for (i in seq_along(values)) cat(sprintf('("%s", "%s", "%s", "%s", %d): %s,\n', outcome, part, method, field,
                                           i - 1L, num(values[i])))
}
row_of <- function(study, instrument, timepoint, analysis) {
  r <- po[po$study == study & po$instrument == instrument & po$timepoint == timepoint & po$analysis == analysis, ]
  stopifnot(nrow(r) == 1); r
}
effect <- function(r) {
  s <- r$sign_favouring_imr
  e <- switch(r$conversion,
    smd_from_arms = escalc("SMD", m1i = r$mean_imr, sd1i = r$sd_imr, n1i = r$n_imr, m2i = r$mean_tau,
                           sd2i = r$sd_tau, n2i = r$n_tau),
    d_total_n_equal_split = escalc("SMD", di = r$effect, n1i = r$n_total / 2, n2i = r$n_total / 2),
    d_from_p_two_sided = escalc("SMD", ti = qt(r$p / 2, r$n_imr + r$n_tau - 2, lower.tail = FALSE),
                                n1i = r$n_imr, n2i = r$n_tau),
    d_from_eta_squared = escalc("SMD", ti = sqrt(r$effect * (r$n_total - 2) / (1 - r$effect)),
                                n1i = r$n_total / 2, n2i = r$n_total / 2),
    log_or_from_ci = data.frame(yi = log(r$effect),
                                vi = ((log(r$ci_high) - log(r$ci_low)) / (2 * qnorm(0.975)))^2))
  c(yi = s * as.numeric(e$yi), vi = as.numeric(e$vi), year = r$year)
}
build <- function(spec) as.data.frame(do.call(rbind, lapply(spec, function(x) effect(do.call(row_of, as.list(x))))))
J <- function(instr, tp = "fu12") c("Jensen 2019", instr, tp, "complete_case")
main <- list(
  imrs_client = list(c("Levitt 2009", "imrs_client", "longest_fu", "itt"), J("imrs_client"),
                     c("Roosenschoon 2021", "imrs_client", "overall", "itt"),
                     c("Wong 2023", "imrs_client", "unclear", "not_stated")),
  imrs_clinician = list(c("Hasson-Ohayon 2007", "imrs_clinician", "longest_fu", "not_stated"),
                        c("Levitt 2009", "imrs_clinician", "longest_fu", "itt"), J("imrs_clinician")),
  hope = list(J("hope"), c("Wong 2023", "hope", "unclear", "not_stated")),
  functioning = list(J("gaf_f"), c("Wong 2023", "sofas", "unclear", "not_stated")),
  symptoms = list(c("Levitt 2009", "bprs", "longest_fu", "not_stated"), J("panss_total")),
  hospitalisation = list(c("Roosenschoon 2021", "hospitalisation", "year_after_post", "not_stated")))

cat("REF = {\n")
for (outcome in names(main)) {
  d <- build(main[[outcome]])
  emit(outcome, "effects", "", "yi", d$yi); emit(outcome, "effects", "", "vi", d$vi)
  if (nrow(d) < 2) next
  for (method in c("REML", "DL", "PM", "ML", "EE")) {
    fit <- rma(yi, vi, data = d, method = method, test = if (method == "EE") "z" else "knha")
    s <- function(field, v) emit(outcome, "estimators", method, field, v)
    s("estimate", fit$beta); s("se", fit$se); s("ci_low", fit$ci.lb); s("ci_high", fit$ci.ub); s("p", fit$pval)
    s("tau2", fit$tau2); s("i2", fit$I2); s("q", fit$QE)
    if (method != "EE") { pr <- predict(fit); s("pi_low", pr$pi.lb); s("pi_high", pr$pi.ub) }
  }
  fit <- rma(yi, vi, data = d, method = "REML", test = "knha")
  ci <- confint(fit)$random
  emit(outcome, "confint", "REML", "ci_low", ci[, "ci.lb"]); emit(outcome, "confint", "REML", "ci_high", ci[, "ci.ub"])
  l1 <- leave1out(fit)
  emit(outcome, "leave1out", "REML", "estimate", l1$estimate); emit(outcome, "leave1out", "REML", "ci_low", l1$ci.lb)
  cu <- cumul(fit, order = d$year)
  emit(outcome, "cumulative", "REML", "estimate", cu$estimate); emit(outcome, "cumulative", "REML", "ci_high", cu$ci.ub)
  if (nrow(d) >= 3) {
    eg <- regtest(fit, model = "rma", predictor = "sei")
    emit(outcome, "egger", "REML", "statistic", eg$zval); emit(outcome, "egger", "REML", "p", eg$pval)
    emit(outcome, "egger", "REML", "limit", eg$est)
  }
}
# sensitivity analyses for imrs_client: end of treatment first (Jensen post); Färdig (use = sensitivity) added
sens <- list(post_first = list(c("Levitt 2009", "imrs_client", "longest_fu", "itt"), J("imrs_client", "post"),
                               c("Roosenschoon 2021", "imrs_client", "overall", "itt"),
                               c("Wong 2023", "imrs_client", "unclear", "not_stated")),
             with_sensitivity = c(main$imrs_client, list(c("Fardig 2011", "imrs_client", "longest_fu", "not_stated"))))
for (nm in names(sens)) {
  fit <- rma(yi, vi, data = build(sens[[nm]]), method = "REML", test = "knha")
  emit("imrs_client", paste0("sensitivity_", nm), "REML", "estimate", fit$beta)
  emit("imrs_client", paste0("sensitivity_", nm), "REML", "ci_low", fit$ci.lb)
}
# implementation: events = round(percent x N / 100), N = the number of people offered IMR, named here by hand
# (data/published/README.md gives the evidence) and checked against the curated `denominator` column.
# printed: Table 1 prints the IMR N (Salyers 2011) or the study is single-group pre-post (all enrolled got IMR);
# assumed: a controlled study printing only its total (Fardig floor(41/2); Salyers 2010 324/2 by 2 of 4 teams;
# Fujita 21 of 25, the IMR N the printed 14% and 86% allow with a small wait-list control).
imr_n <- c("Mueser 2006" = 31, "Salyers Godfrey 2009" = 324, "Salyers 2011" = 144,
           "Fardig 2011" = 20, "Salyers 2010" = 162, "Fujita 2010" = 21)
assumed <- c("Fardig 2011", "Salyers 2010", "Fujita 2010")
plo_fit <- function(r) {
  n <- unname(imr_n[r$study]); stopifnot(!anyNA(n), all(n == r$denominator))
  rma(measure = "PLO", xi = round(r$value * n / 100), ni = n, method = "REML", test = "knha")
}
for (measure in c("dropout_pct", "completion_pct")) {
  r <- rates[rates$measure == measure & rates$use == "pool with care", ]
  r <- r[order(r$year, r$study), ]
  fit <- plo_fit(r)
  pr <- predict(fit, transf = transf.ilogit)
  s <- function(field, v) emit(measure, "implementation", "REML", field, v)
  s("k", fit$k); s("pct", 100 * pr$pred); s("ci_low", 100 * pr$ci.lb); s("ci_high", 100 * pr$ci.ub)
  s("pi_low", 100 * pr$pi.lb); s("pi_high", 100 * pr$pi.ub); s("logit", fit$beta); s("logit_se", fit$se)
  # sensitivity: only the studies whose IMR N is printed
  fit <- plo_fit(r[!(r$study %in% assumed), ])
  pr <- predict(fit, transf = transf.ilogit)
  s <- function(field, v) emit(measure, "implementation_printed_only", "REML", field, v)
  s("k", fit$k); s("pct", 100 * pr$pred); s("ci_low", 100 * pr$ci.lb); s("ci_high", 100 * pr$ci.ub)
  s("logit", fit$beta); s("logit_se", fit$se)
}
cat("}\n")
