#!/usr/bin/python3
"""scikit-learn's KMeans on a matrix written by examples/single_cell_clustering.

Usage: sklearn_kmeans.py X.tsv K SEED LABELS_OUT [N_INIT [TRUTH]]
  X.tsv       one point per line, tab-separated coordinates (the PCA matrix of the example)
  K           number of clusters
  SEED        random_state
  LABELS_OUT  the fitted labels, one per line
  N_INIT      k-means++ restarts (default 10, scikit-learn 1.2's default)
  TRUTH       optional file of true labels, one per line: sklearn's own ARI and NMI are printed,
              a cross-check of diffbio's metrics on the same labels
Prints one line: "sklearn n=<n> k=<k> n_init=<r> inertia=<..> n_iter=<..> fit_seconds=<..>
[ari=<..> nmi=<..>]". Needs python3-sklearn (Debian; run with /usr/bin/python3).
"""
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def main(argv):
    if len(argv) not in (5, 6, 7):
        sys.exit(__doc__)
    x = np.loadtxt(argv[1], delimiter="\t", ndmin=2)
    k, seed = int(argv[2]), int(argv[3])
    n_init = int(argv[5]) if len(argv) > 5 else 10
    t0 = time.perf_counter()
    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed, algorithm="lloyd").fit(x)
    seconds = time.perf_counter() - t0
    np.savetxt(argv[4], km.labels_, fmt="%d")
    line = "sklearn n=%d k=%d n_init=%d inertia=%.10g n_iter=%d fit_seconds=%.4f" % (
        x.shape[0], k, n_init, km.inertia_, km.n_iter_, seconds)
    if len(argv) > 6:
        truth = np.loadtxt(argv[6], dtype=int, ndmin=1)
        line += " ari=%.6f nmi=%.6f" % (adjusted_rand_score(truth, km.labels_),
                                        normalized_mutual_info_score(truth, km.labels_))
    print(line)


if __name__ == "__main__":
    main(sys.argv)
