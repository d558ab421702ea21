#!/usr/bin/python3
"""Figures of examples/single_cell_clustering, from the TSV tables it writes.

Usage: plot_single_cell.py DIR TAG   (TAG: pbmc_small or simulation)
Reads DIR/TAG_embedding.tsv (x1 x2 truth predicted: the first two PCs), DIR/TAG_labels.tsv
(code label), and when present DIR/TAG_learned_<objective>.tsv (x1 x2 truth predicted train: the
first two principal components of the learned features, first split) and DIR/TAG_training.tsv (objective split step loss).
Writes DIR/TAG_clusters.png (true labels and predicted clusters side by side, one row per
embedding) and DIR/TAG_training.png. Predicted clusters are recoloured to the true label they
overlap most (Hungarian matching when scipy is available), so that agreeing cells share a colour.
Needs matplotlib (Debian: python3-matplotlib, run with /usr/bin/python3).
"""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def table(path):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def match(truth, pred):
    """Maps each predicted cluster to a true label (one to one where possible)."""
    ks, ls = sorted(set(pred)), sorted(set(truth))
    counts = {(p, t): 0 for p in ks for t in ls}
    for t, p in zip(truth, pred):
        counts[(p, t)] += 1
    try:
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        m = np.array([[counts[(p, t)] for t in ls] for p in ks])
        rows, cols = linear_sum_assignment(-m)
        mapping = {ks[r]: ls[c] for r, c in zip(rows, cols)}
    except ImportError:
        mapping = {}
    extra = max(ls) + 1
    for p in ks:
        if p not in mapping:
            mapping[p] = extra
            extra += 1
    return [mapping[p] for p in pred]


def scatter(ax, x, y, c, title, names, size):
    cmap = plt.get_cmap("tab10" if max(c) < 10 else "tab20")
    for k in sorted(set(c)):
        idx = [i for i, v in enumerate(c) if v == k]
        label = names.get(k, "unmatched %d" % k)
        ax.scatter([x[i] for i in idx], [y[i] for i in idx], s=size, color=cmap(k % cmap.N), label=label, linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, markerscale=max(1.0, 12.0 / size), loc="best")


def main(out, tag):
    emb = table(os.path.join(out, tag + "_embedding.tsv"))
    labels = table(os.path.join(out, tag + "_labels.tsv"))
    names = {int(c): l for c, l in zip(labels["code"], labels["label"])}
    panels = [("PCA of the expression", "PC", emb, None)]
    learned = sorted(glob.glob(os.path.join(out, tag + "_learned_*.tsv")))
    learned.sort(key=lambda p: "soft-ari" not in p)  # the supervised objective first
    for path in learned:
        objective = os.path.basename(path)[len(tag + "_learned_"):-4]
        panels.append(("learned features (%s)" % objective, "PC of learned features ", table(path), objective))
    n = len(emb["x1"])
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.6 * len(panels)), squeeze=False)
    for row, (name, axis, t, objective) in enumerate(panels):
        m = len(t["x1"])
        size = 14.0 if m <= 500 else (3.0 if m <= 10000 else 0.6)
        x = [float(v) for v in t["x1"]]
        y = [float(v) for v in t["x2"]]
        truth = [int(v) for v in t["truth"]]
        pred = match(truth, [int(v) for v in t["predicted"]])
        how = "soft k-means" if objective is None else "nearest trained centroid"
        scatter(axes[row][0], x, y, truth, "%s: true labels (%d cells)" % (name, m), names, size)
        scatter(axes[row][1], x, y, pred, "%s: predicted (%s)" % (name, how), names, size)
        for a in axes[row]:
            a.set_xlabel(axis + "1")
            a.set_ylabel(axis + "2")
    fig.suptitle("%s: %d cells" % (tag, n))
    fig.tight_layout()
    png = os.path.join(out, tag + "_clusters.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print("figure:", os.path.abspath(png))

    curves = os.path.join(out, tag + "_training.tsv")
    if os.path.exists(curves):
        t = table(curves)
        if t:
            objectives = sorted(set(t["objective"]))
            fig, axes = plt.subplots(1, len(objectives), figsize=(5.5 * len(objectives), 4), squeeze=False)
            for a, obj in zip(axes[0], objectives):
                splits = sorted({int(s) for o, s in zip(t["objective"], t["split"]) if o == obj})
                for s in splits:
                    pts = [(int(k), float(v)) for o, sp, k, v in zip(t["objective"], t["split"], t["step"], t["loss"])
                           if o == obj and int(sp) == s]
                    a.plot([p[0] for p in pts], [p[1] for p in pts], label="split %d" % s)
                a.set(title="%s: training loss (%s)" % (tag, obj), xlabel="Adam step", ylabel="loss")
                a.legend(fontsize=7)
            fig.tight_layout()
            png = os.path.join(out, tag + "_training.png")
            fig.savefig(png, dpi=110)
            plt.close(fig)
            print("figure:", os.path.abspath(png))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
