# Reference values for tests/validation/test_implementation_vs_r.py (imrstats implementation stage).
# Run from the repository root:  Rscript tests/validation/r/implementation.R
# Reads tests/validation/data/impl_programme.csv (a deterministic Ferrara-like registry, 126 courses)
# and tests/validation/data/impl_samples.csv (small tie-free samples for the exact branches).
# Base R only (stats). Prints "key value" lines; the test pins these numbers.

out <- function(key, x) cat(key, paste(sprintf("%.15g", as.numeric(x)), collapse = " "), "\n")

d <- read.csv("tests/validation/data/impl_programme.csv", stringsAsFactors = FALSE)
start <- as.Date(d$start_date); stop <- as.Date(d$stop_date); first <- as.Date(d$first_contact_date)
d$age_at_start <- as.integer(format(start, "%Y")) - d$birth_year
d$age_at_first_contact <- as.integer(format(first, "%Y")) - d$birth_year
d$illness_duration_years <- as.numeric(start - first) / 365.25
d$duration_months <- as.numeric(stop - start) / (365.25 / 12)
mods <- sprintf("m%02d", 1:11)
d$modules_received <- rowSums(d[, mods])
d$service_type <- factor(d$service_type, levels = c("CMHC", "SerD", "EDP"))
two <- droplevels(d[d$service_type %in% c("CMHC", "SerD"), ])

# --- contingency tables: chisq.test (default correct = TRUE) and fisher.test on every table
tab <- function(v, data) table(data[[v]], data$service_type)
for (v in c("sex", "diagnosis", "format", mods)) {
  for (which in c("three", "two")) {
    data <- if (which == "three") d else two
    x <- tab(v, data); x <- x[rowSums(x) > 0, colSums(x) > 0, drop = FALSE]
    if (nrow(x) < 2) next
    ch <- suppressWarnings(chisq.test(x))
    out(paste0("chisq_", v, "_", which), c(ch$statistic, ch$parameter, ch$p.value))
    fi <- fisher.test(x, workspace = 2e8)
    out(paste0("fisher_", v, "_", which), fi$p.value)
    if (all(dim(x) == 2)) out(paste0("fisheror_", v, "_", which), c(fi$estimate, fi$conf.int))
  }
}

# --- continuous by service type: aov, kruskal.test; CMHC vs SerD: t.test (Welch), wilcox.test
for (v in c("age_at_start", "age_at_first_contact", "illness_duration_years", "sessions",
            "duration_months", "modules_received", "imrs_user", "imrs_provider")) {
  a <- summary(aov(d[[v]] ~ d$service_type))[[1]]
  out(paste0("aov_", v), c(a[["F value"]][1], a[["Df"]][1], a[["Df"]][2], a[["Pr(>F)"]][1]))
  k <- kruskal.test(d[[v]], d$service_type)
  out(paste0("kruskal_", v), c(k$statistic, k$parameter, k$p.value))
  x <- two[[v]][two$service_type == "CMHC"]; y <- two[[v]][two$service_type == "SerD"]
  t <- t.test(x, y)
  out(paste0("welch_", v), c(t$statistic, t$parameter, t$p.value, t$conf.int, mean(x, na.rm = TRUE) - mean(y, na.rm = TRUE)))
  w <- suppressWarnings(wilcox.test(x, y))
  out(paste0("wilcox_", v), c(w$statistic, w$p.value))
  # descriptive summaries: overall, quartiles type 7 (R's default)
  z <- d[[v]][!is.na(d[[v]])]
  out(paste0("describe_", v), c(length(z), mean(z), sd(z), median(z), quantile(z, c(.25, .75)), min(z), max(z)))
}

# --- IMRS user vs provider: cor.test (Pearson, Spearman), Bland-Altman by its formula
ok <- complete.cases(d$imrs_user, d$imrs_provider)
u <- d$imrs_user[ok]; p <- d$imrs_provider[ok]
cp <- cor.test(u, p)
out("pearson_imrs", c(cp$estimate, cp$statistic, cp$parameter, cp$p.value, cp$conf.int))
cs <- suppressWarnings(cor.test(u, p, method = "spearman"))
out("spearman_imrs", c(cs$estimate, cs$statistic, cs$p.value))
dd <- u - p; n <- length(dd); z <- qnorm(0.975); q <- qt(0.975, n - 1)
se_loa <- sd(dd) * sqrt(1 / n + z^2 / (2 * (n - 1)))
out("blandaltman_imrs", c(mean(dd), sd(dd), mean(dd) + c(-1, 1) * q * sd(dd) / sqrt(n),
                          mean(dd) - z * sd(dd) + c(-1, 1) * q * se_loa, mean(dd) + z * sd(dd) + c(-1, 1) * q * se_loa))
# Spearman CI (R gives none): Fisher z with the Bonett-Wright variance, by its formula
r <- cs$estimate; h <- z * sqrt((1 + r^2 / 2) / (n - 3))
out("spearman_ci_imrs", tanh(atanh(r) + c(-1, 1) * h))

# --- exact branches on tie-free samples
s <- read.csv("tests/validation/data/impl_samples.csv")
a <- na.omit(s$a); b <- na.omit(s$b)
w <- wilcox.test(a, b); out("wilcox_exact_ab", c(w$statistic, w$p.value))
t <- t.test(a, b); out("welch_ab", c(t$statistic, t$parameter, t$p.value, t$conf.int))
c7 <- cor.test(na.omit(s$sx7), na.omit(s$sy7), method = "spearman")
out("spearman_exact7", c(c7$estimate, c7$statistic, c7$p.value))
c30 <- cor.test(s$sx30, s$sy30, method = "spearman")
out("spearman_edgeworth30", c(c30$estimate, c30$statistic, c30$p.value))
p30 <- cor.test(s$sx30, s$sy30)
out("pearson_30", c(p30$estimate, p30$statistic, p30$parameter, p30$p.value, p30$conf.int))

# --- 2x2 conditional MLE odds ratio to full precision (fisher.test itself uses uniroot's default
# tol ~ 1.2e-4, so its printed estimate and CI are only accurate to that): same definitions, tol 1e-14.
or_precise <- function(x, conf = 0.95) {
  m <- sum(x[, 1]); n <- sum(x[, 2]); k <- sum(x[1, ]); x11 <- x[1, 1]
  lo <- max(0, k - n); hi <- min(k, m); support <- lo:hi
  logdc <- dhyper(support, m, n, k, log = TRUE)
  dn <- function(ncp) { d <- logdc + log(ncp) * support; d <- exp(d - max(d)); d / sum(d) }
  mn <- function(ncp) sum(support * dn(ncp))
  pn <- function(q, ncp, upper = FALSE) { d <- dn(ncp); if (upper) sum(d[support >= q]) else sum(d[support <= q]) }
  root <- function(f) uniroot(function(t) f(exp(t)), c(-50, 50), tol = 1e-14)$root
  alpha <- (1 - conf) / 2
  # at the edges of the support R returns 0 / Inf without solving, as here
  c(if (x11 == lo) 0 else if (x11 == hi) Inf else exp(root(function(r) mn(r) - x11)),
    if (x11 == lo) 0 else exp(root(function(r) pn(x11, r, TRUE) - alpha)),
    if (x11 == hi) Inf else exp(root(function(r) pn(x11, r) - alpha)))
}
for (v in c("sex", "m01", "m02", "m11", "m06", "m09")) {
  x <- tab(v, two)
  out(paste0("orprecise_", v, "_two"), or_precise(unclass(x)))
}
