# Reference values for tests/validation/test_trial_vs_r.py (deterministic part).
# Data: tests/validation/data/trial_gaf_f.csv. Run from the repository root:
#   Rscript tests/validation/r/trial_deterministic.R
# 1. complete-case ANCOVA: lm(y_t ~ arm + baseline + site + sex + age + diagnosis), armIMR row
# 2. per protocol (IMR arm): anova(lm(y_t ~ group)), group = sessions > 10; lm(y_t ~ sessions) slope
# 3. subgroup interaction on complete cases at fu12: anova(lm(fu12 ~ baseline + <other covariates> +
#    arm * subgroup)), the arm:subgroup row (last term, so the sequential F is the nested-model F)
# 4. p.adjust holm / BH on a fixed vector with an NA
d <- read.csv("tests/validation/data/trial_gaf_f.csv", stringsAsFactors = TRUE)
d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
f <- function(x) sprintf("%.15g", x)
for (tp in c("post", "fu12")) {
  cc <- d[!is.na(d[[tp]]) & !is.na(d$baseline), ]
  fit <- lm(as.formula(paste(tp, "~ arm + baseline + site + sex + age + diagnosis")), data = cc)
  s <- summary(fit)$coefficients["armIMR", ]
  cat("cc", tp, "estimate", f(s[1]), "se", f(s[2]), "t", f(s[3]), "p", f(s[4]), "df", fit$df.residual, "n", nrow(cc), "\n")
  imr <- d[d$arm == "IMR" & !is.na(d[[tp]]), ]
  imr$group <- factor(imr$sessions_attended > 10)
  a <- anova(lm(as.formula(paste(tp, "~ group")), data = imr))
  cat("pp_anova", tp, "F", f(a[1, "F value"]), "df1", a[1, "Df"], "df2", a[2, "Df"], "p", f(a[1, "Pr(>F)"]), "\n")
  s <- summary(lm(as.formula(paste(tp, "~ sessions_attended")), data = imr))$coefficients[2, ]
  cat("pp_slope", tp, "estimate", f(s[1]), "se", f(s[2]), "t", f(s[3]), "p", f(s[4]), "\n")
}
cc <- d[!is.na(d$fu12) & !is.na(d$baseline), ]
for (sg in c("sex", "diagnosis")) {
  others <- setdiff(c("site", "sex", "age", "diagnosis"), sg)
  fml <- as.formula(paste("fu12 ~ baseline +", paste(others, collapse = " + "), "+ arm *", sg))
  a <- anova(lm(fml, data = cc))
  r <- nrow(a) - 1
  cat("interaction", sg, "F", f(a[r, "F value"]), "df1", a[r, "Df"], "df2", a[r + 1, "Df"], "p", f(a[r, "Pr(>F)"]), "\n")
}
p <- c(0.01, 0.04, 0.03, NA, 0.2, 0.005, 0.04, 0.9)
cat("holm", f(p.adjust(p, "holm")), "\n")
cat("BH", f(p.adjust(p, "BH")), "\n")
