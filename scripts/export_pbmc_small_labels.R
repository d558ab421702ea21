#!/usr/bin/Rscript
# Writes the cluster labels of Seurat's pbmc_small, Idents(pbmc_small), as a TSV table with a
# header line "cell<TAB>label": one line per cell (80), barcodes as in the columns of
# /usr/lib/R/site-library/Seurat/extdata/pbmc_raw.txt, labels "0", "1", "2".
#
# Usage: Rscript scripts/export_pbmc_small_labels.R OUT.tsv
# Needs the Debian packages r-cran-seuratobject (pbmc_small) and r-cran-seurat (pbmc_raw.txt).
# examples/single_cell_clustering runs this script when it is not given --labels.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) {
  stop("usage: Rscript export_pbmc_small_labels.R OUT.tsv", call. = FALSE)
}
suppressPackageStartupMessages(library(SeuratObject))
data("pbmc_small", package = "SeuratObject", envir = environment())
ids <- Idents(pbmc_small)
table <- data.frame(cell = names(ids), label = as.character(ids), stringsAsFactors = FALSE)
write.table(table, file = args[[1]], sep = "\t", quote = FALSE, row.names = FALSE)
cat(sprintf("wrote %d labels (%d clusters) to %s\n", nrow(table), length(levels(ids)), args[[1]]))
