# References for tests/validation/test_audit_vs_r.py (imrstats.audit.checks), base R only.
# Run from the repository root: Rscript tests/validation/r/audit.R
# 1. t.test (Student, Welch) on raw samples a, b; cor.test on x, y; chisq.test on fixed tables.
# 2. Student / Welch p at the 16 corners of the rounding box of printed Table 4 summaries (Jensen 2019).
# 3. Brute-force GRIM / GRIMMER: every multiset of n integers in -6..20 (n = 3..6), its mean and SD; a printed
#    (mean, SD) at 2 decimals is consistent if some multiset has both inside [x - 0.005, x + 0.005].
p15 <- function(name, x) cat(sprintf("'%s': [%s],\n", name, paste(sprintf("%.15g", x), collapse = ", ")))
d <- read.csv("tests/validation/data/audit_samples.csv")
a <- d$value[d$sample == "a"]; b <- d$value[d$sample == "b"]
x <- d$value[d$sample == "x"]; y <- d$value[d$sample == "y"]
s <- t.test(a, b, var.equal = TRUE); w <- t.test(a, b)
p15("student_raw", c(s$statistic, s$parameter, s$p.value))
p15("welch_raw", c(w$statistic, w$parameter, w$p.value))
p15("summaries_raw", c(mean(a), sd(a), length(a), mean(b), sd(b), length(b)))
ct <- cor.test(x, y)
p15("cor_raw", c(ct$estimate, length(x), ct$p.value))
tab1 <- matrix(c(12, 30, 20, 25), 2, byrow = TRUE)
tab2 <- matrix(c(8, 14, 22, 5, 9, 3), 2, byrow = TRUE)
for (corr in c(FALSE, TRUE)) {
  r1 <- suppressWarnings(chisq.test(tab1, correct = corr))
  p15(paste0("chisq_2x2_", corr), c(r1$statistic, r1$parameter, r1$p.value))
}
r2 <- suppressWarnings(chisq.test(tab2))
p15("chisq_2x3", c(r2$statistic, r2$parameter, r2$p.value))
p15("chisq_stat_bounds", c(pchisq(3.845, 1, lower.tail = FALSE), pchisq(3.835, 1, lower.tail = FALSE)))

# 2. corners of the rounding box (half unit 0.05 for 1-decimal values), Student and Welch
corners <- function(m1, s1, n1, m2, s2, n2, h) {
  g <- expand.grid(m1 = m1 + c(-h, h), s1 = s1 + c(-h, h), m2 = m2 + c(-h, h), s2 = s2 + c(-h, h))
  st <- apply(g, 1, function(r) {
    sp <- sqrt(((n1 - 1) * r["s1"]^2 + (n2 - 1) * r["s2"]^2) / (n1 + n2 - 2))
    t <- (r["m1"] - r["m2"]) / (sp * sqrt(1 / n1 + 1 / n2)); 2 * pt(-abs(t), n1 + n2 - 2)
  })
  we <- apply(g, 1, function(r) {
    v1 <- r["s1"]^2 / n1; v2 <- r["s2"]^2 / n2
    t <- (r["m1"] - r["m2"]) / sqrt(v1 + v2); df <- (v1 + v2)^2 / (v1^2 / (n1 - 1) + v2^2 / (n2 - 1))
    2 * pt(-abs(t), df)
  })
  c(min(st), max(st), min(we), max(we))
}
p15("t4_gaf_f", corners(47.3, 13.7, 19, 51.3, 12.8, 47, 0.05))
p15("t4_psp", corners(48.5, 12.5, 19, 53.4, 14.4, 45, 0.05))
p15("t4_panss", corners(61.8, 19.2, 12, 57.3, 17.4, 43, 0.05))
p15("t4_imrs_bipolar", corners(57.1, 6.9, 10, 62.6, 3.29, 8, 0.05))   # mixed decimals: see the test

# correlation p at the ends of r's rounding interval (r = 0.96, n = 15) and the Ferrara point
rp <- function(r, n) { t <- r * sqrt(n - 2) / sqrt(1 - r^2); 2 * pt(-abs(t), n - 2) }
p15("cor_ferrara", c(rp(0.965, 15), rp(0.955, 15), rp(0.96, 15)))

# 3. brute force GRIM / GRIMMER
cases <- read.csv("tests/validation/data/audit_grimmer_cases.csv", colClasses = c("character", "integer",
                                                                                   "character", "character"))
values <- -6:20
out_grim <- c(); out_grimmer <- c()
for (n in sort(unique(cases$n))) {
  idx <- combn(length(values) + n - 1, n)                   # stars and bars: multisets of size n
  ms <- matrix(values[idx - (0:(n - 1))], nrow = n)
  mu <- colMeans(ms); sdv <- sqrt(colSums((ms - rep(mu, each = n))^2) / (n - 1))
  sub <- cases[cases$n == n, ]
  for (i in seq_len(nrow(sub))) {
    m <- as.numeric(sub$mean[i]); s <- as.numeric(sub$sd[i])
    okm <- abs(mu - m) <= 0.005 + 1e-9
    if (!any(okm)) out_grim <- c(out_grim, sub$case[i])
    if (!any(okm & abs(sdv - s) <= 0.005 + 1e-9)) out_grimmer <- c(out_grimmer, sub$case[i])
  }
}
cat("grim_inconsistent = [", paste(sprintf("'%s'", out_grim), collapse = ", "), "]\n")
cat("grimmer_inconsistent = [", paste(sprintf("'%s'", out_grimmer), collapse = ", "), "]\n")
