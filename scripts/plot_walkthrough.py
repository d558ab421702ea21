#!/usr/bin/python3
"""Figures of the preprocessing walkthrough, from the TSV tables it writes.

Usage: plot_walkthrough.py DIR   (DIR holds quality.tsv, retention_initial.tsv,
retention_final.tsv, read_weights.tsv, threshold.tsv, training.tsv; PNGs are written there)
Needs matplotlib (Debian: python3-matplotlib, run with /usr/bin/python3).
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def matrix(path):
    with open(path) as f:
        return [[float(x) for x in line.split("\t")] for line in f if line.strip()]


def table(path):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def column_means(m):
    return [sum(col) / len(col) for col in zip(*m)]


def main(out):
    q = matrix(os.path.join(out, "quality.tsv"))
    r0 = matrix(os.path.join(out, "retention_initial.tsv"))
    r1 = matrix(os.path.join(out, "retention_final.tsv"))
    weights = [float(x) for x in open(os.path.join(out, "read_weights.tsv")) if x.strip()]
    thr = table(os.path.join(out, "threshold.tsv"))
    train = table(os.path.join(out, "training.tsv"))
    written = []

    def save(fig, name):
        path = os.path.join(out, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    im = ax[0].imshow(q, aspect="auto", cmap="viridis")
    ax[0].set(title="Phred quality", xlabel="position", ylabel="read")
    fig.colorbar(im, ax=ax[0])
    ax[1].plot(column_means(q))
    ax[1].set(title="mean quality by position", xlabel="position", ylabel="Phred")
    save(fig, "quality.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(thr["quality"], thr["soft"], label="soft: sigmoid(q - theta)")
    ax.step(thr["quality"], thr["hard"], where="post", label="hard: q > theta", linestyle="--")
    ax.set(title="learned threshold", xlabel="quality", ylabel="retention")
    ax.legend()
    save(fig, "threshold.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(column_means(r0), label="before training (theta = 35)")
    ax.plot(column_means(r1), label="after training")
    ax.set(title="mean retained intensity by position", xlabel="position", ylabel="retention", ylim=(0, 1.05))
    ax.legend()
    save(fig, "intensity.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(weights, bins=30)
    ax.set(title="read weights (duplicate weighting)", xlabel="weight", ylabel="reads")
    save(fig, "read_weights.png")

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(train["step"], train["loss"])
    ax[0].set(title="loss", xlabel="step")
    ax[1].plot(train["step"], train["theta"])
    ax[1].set(title="quality threshold", xlabel="step", ylabel="theta")
    save(fig, "training.png")

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for a, m, t in ((ax[0], r0, "initial retention"), (ax[1], r1, "learned retention")):
        im = a.imshow(m, aspect="auto", cmap="magma", vmin=0, vmax=1)
        a.set(title=t, xlabel="position", ylabel="read")
        fig.colorbar(im, ax=a)
    save(fig, "retention.png")

    for p in written:
        print("figure:", p)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
