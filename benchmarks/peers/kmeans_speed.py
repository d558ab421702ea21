"""scikit-learn side of benchmarks/peers/kmeans_speed.sh (run it with /usr/bin/python3, Debian's
python3-sklearn).

  kmeans_speed.py make-data --out FILE --n N --features F --clusters K --seed S
      Gaussian blobs: K centres drawn from N(0, 3^2) per coordinate, each point a centre (chosen
      uniformly) plus N(0, 1) noise; the initial centroids are K distinct points drawn at random.
      File layout (little endian): the 8 bytes "DBKMEANS", int64 n, F, K, then x as n*F float64
      (row-major), then the centroids as K*F float64.
  kmeans_speed.py bench --data FILE --reps R [--labels-out FILE]
      Times KMeans(n_clusters=K, init=centroids, n_init=1, max_iter=1, algorithm="lloyd",
      tol=0).fit(x): one untimed warm-up fit, then R timed fits (nothing subtracted: the fit's
      validation, copy and centring of x, its one Lloyd iteration, the final relabelling with the
      new centroids and the inertia). Prints the BLAS / OpenMP libraries threadpoolctl sees, then
        sklearn fit_max_iter_1 threads=<T> median_s=.. min_s=.. inertia=.. n_iter=..
      and writes the labels of the last fit (int32) to --labels-out.
"""

import argparse
import os
import struct
import sys
import time

import numpy as np

MAGIC = b"DBKMEANS"


def read_data(path):
    with open(path, "rb") as f:
        if f.read(8) != MAGIC:
            sys.exit(f"{path}: not a kmeans_speed data file")
        n, feat, k = struct.unpack("<qqq", f.read(24))
        x = np.fromfile(f, dtype="<f8", count=n * feat).reshape(n, feat)
        c = np.fromfile(f, dtype="<f8", count=k * feat).reshape(k, feat)
    if x.shape != (n, feat) or c.shape != (k, feat):
        sys.exit(f"{path}: truncated")
    return x, c


def make_data(args):
    rng = np.random.default_rng(args.seed)
    n, feat, k = args.n, args.features, args.clusters
    centres = rng.normal(0.0, 3.0, size=(k, feat))
    which = rng.integers(0, k, size=n)
    x = centres[which] + rng.standard_normal((n, feat))
    init = x[rng.choice(n, size=k, replace=False)]
    with open(args.out, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<qqq", n, feat, k))
        np.ascontiguousarray(x, dtype="<f8").tofile(f)
        np.ascontiguousarray(init, dtype="<f8").tofile(f)


def bench(args):
    from sklearn.cluster import KMeans
    import sklearn

    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            print("# threadpool: {} {} {} arch={} threads={} ({})".format(
                info.get("user_api"), info.get("internal_api"), info.get("version"), info.get("architecture", "-"),
                info.get("num_threads"), info.get("filepath")))
    except ImportError:
        print("# threadpoolctl not importable: BLAS unknown")
    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    x, c = read_data(args.data)
    k = c.shape[0]

    def fit():
        return KMeans(n_clusters=k, init=c, n_init=1, max_iter=1, algorithm="lloyd", tol=0).fit(x)

    km = fit()  # warm-up
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        km = fit()
        times.append(time.perf_counter() - t0)
    times.sort()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print("sklearn fit_max_iter_1 threads={} median_s={:.6f} min_s={:.6f} inertia={!r} n_iter={}".format(
        threads, times[(len(times) - 1) // 2], times[0], float(km.inertia_), int(km.n_iter_)))
    if args.labels_out:
        km.labels_.astype("<i4").tofile(args.labels_out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("--out", required=True)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--features", type=int, required=True)
    m.add_argument("--clusters", type=int, required=True)
    m.add_argument("--seed", type=int, default=7)
    b = sub.add_parser("bench")
    b.add_argument("--data", required=True)
    b.add_argument("--reps", type=int, default=5)
    b.add_argument("--labels-out")
    args = p.parse_args()
    make_data(args) if args.cmd == "make-data" else bench(args)


if __name__ == "__main__":
    main()
