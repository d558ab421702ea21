"""Shared by the JAX sides of the peer benchmarks (jax_preprocessing.py, jax_sw.py): the command
line (make-data / bench), the JAX import with the precision switch, and the timing helpers.
They import it as a sibling module (python puts the script's own folder first on sys.path).
"""

import argparse
import time


def setup_jax(x64):
    """Imports jax, enabling float64 first when x64; returns (jax, jax.numpy, the float dtype)."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp, (jnp.float64 if x64 else jnp.float32)


def time_calls(fn, reps):
    """Calls fn() reps times; returns (each call's wall time in ms, the last call's value)."""
    times, value = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, value


def value_and_grad_ready(vag, *args):
    """vag(*args) -> (value, grads), waiting for both; returns the value."""
    import jax

    value, grads = vag(*args)
    jax.block_until_ready(grads)
    return value.block_until_ready()


def run_cli(doc, make_data, bench, make_data_args, bench_args):
    """The two sub-commands: make-data -> make_data(args), bench -> bench(args). *_args list the
    options of each as (flag, keyword arguments of add_argument) pairs. Returns the exit status."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, options in (("make-data", make_data_args), ("bench", bench_args)):
        s = sub.add_parser(name)
        for flag, kwargs in options:
            s.add_argument(flag, **kwargs)
    args = p.parse_args()
    make_data(args) if args.cmd == "make-data" else bench(args)
    return 0
