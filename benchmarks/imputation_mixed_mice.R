# R's mice on one amputed table, for benchmarks/imputation_mixed.py (reference numbers only:
# the Python benchmark computes every metric from the imputations this script writes, and
# commits the resulting rows; ppgen never calls R).
#
#   Rscript benchmarks/imputation_mixed_mice.R IN.csv OUT.csv METHOD M MAXIT SEED CATS
#
# METHOD "default": mice's defaults by column type -- pmm for numbers, logreg for two-level
# factors, polyreg (multinomial logit, nnet::multinom) for factors with more levels.
# METHOD "cart": classification and regression trees for every column, each imputed value a
# random draw from the donors of the leaf (Burgette & Reiter 2010; mice.impute.cart).
# CATS: comma-separated names of the categorical columns (read as factors).
# OUT.csv: the imputed cells, long (row 0-based, imp 1..M, column, value); OUT.csv.cpu: the
# CPU seconds (user + system) of the mice() call alone.
# Tested with R 4.2 and mice 3.15.0 (Debian bookworm: apt-get install r-cran-mice r-cran-rpart
# r-cran-nnet r-cran-mass).
args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 7)
infile <- args[1]
outfile <- args[2]
method <- args[3]
m <- as.integer(args[4])
maxit <- as.integer(args[5])
seed <- as.integer(args[6])
cats <- strsplit(args[7], ",", fixed = TRUE)[[1]]

suppressPackageStartupMessages(library(mice))
d <- read.csv(infile, check.names = FALSE, na.strings = c("", "NA"))
for (v in cats) d[[v]] <- factor(d[[v]])

t0 <- proc.time()
if (method == "cart") {
  imp <- mice(d, m = m, maxit = maxit, method = "cart", seed = seed, printFlag = FALSE)
} else if (method == "default") {
  imp <- mice(d, m = m, maxit = maxit, seed = seed, printFlag = FALSE)
} else {
  stop(paste("unknown METHOD", method))
}
elapsed <- proc.time() - t0
cpu <- elapsed[["user.self"]] + elapsed[["sys.self"]]

parts <- list()
for (v in names(imp$imp)) {
  x <- imp$imp[[v]]
  if (is.null(x) || nrow(x) == 0) next
  values <- unlist(lapply(x, as.character), use.names = FALSE)
  parts[[v]] <- data.frame(
    row = rep(as.integer(rownames(x)) - 1L, times = ncol(x)),
    imp = rep(seq_len(ncol(x)), each = nrow(x)),
    column = v,
    value = values
  )
}
write.csv(do.call(rbind, parts), outfile, row.names = FALSE)
writeLines(format(cpu, digits = 6), paste0(outfile, ".cpu"))
if (!is.null(imp$loggedEvents)) {
  message("logged events: ", nrow(imp$loggedEvents))
}
cat("methods:", paste(names(imp$method), imp$method, sep = "=", collapse = " "), "\n")
