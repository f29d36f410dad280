# Reproduce antidepressant.csv from the R data file of rbmi (see README.md in this folder).
#
# Usage, from the repository root, with antidepressant_data.rda taken from the rbmi sources
# (openpharma/rbmi, data/antidepressant_data.rda):
#
#   Rscript data/examples/antidepressant/convert.R path/to/antidepressant_data.rda
#
# Base R only. The conversion keeps every row and column in the package's order; factors (PATIENT,
# VISIT, THERAPY) are written as their labels, SAS labels/format attributes are dropped, missing
# values are written as empty fields, character and factor columns are quoted, no row names.
# All numeric columns hold whole numbers, written as such. Not run by the tests.

args <- commandArgs(trailingOnly = TRUE)
rda <- if (length(args) >= 1) args[1] else "antidepressant_data.rda"
out <- if (length(args) >= 2) args[2] else "data/examples/antidepressant/antidepressant.csv"

env <- new.env()
load(rda, envir = env)
d <- as.data.frame(env$antidepressant_data)

expected <- c("PATIENT", "HAMATOTL", "PGIIMP", "RELDAYS", "VISIT", "THERAPY", "GENDER", "POOLINV",
              "BASVAL", "HAMDTL17", "CHANGE")
stopifnot(identical(names(d), expected), nrow(d) == 608L, nlevels(d$PATIENT) == 172L,
          identical(levels(d$VISIT), c("4", "5", "6", "7")),
          identical(levels(d$THERAPY), c("DRUG", "PLACEBO")))
num <- vapply(d, is.numeric, logical(1))
stopifnot(all(vapply(d[num], function(x) all(is.na(x) | x == round(x)), logical(1))))

for (v in names(d)) {
  if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  attributes(d[[v]]) <- NULL
}
write.csv(d, out, row.names = FALSE, na = "")

# The written file reads back equal to the package's data.
back <- read.csv(out, colClasses = ifelse(num, "numeric", "character"))
stopifnot(isTRUE(all.equal(back, d, check.attributes = FALSE)))
cat("wrote", out, ":", nrow(d), "rows,", length(unique(d$PATIENT)), "patients\n")
