"""Benchmark: vectorised source-clustered bootstrap vs a plain-Python loop on the same draws.

4,000 pairs in 1,000 sources, 10,000 iterations (the benchmark's setting). The plain-Python
loop consumes exactly the same ``default_rng(seed).integers(0, K, size=(m, K))`` draws; it is
run for fewer iterations (``--slow-iterations``, default 1,024 = one chunk) and its time is
extrapolated linearly to 10,000. Equality is checked on the replicates and the CI of that
shorter run (the draws of a shorter run are a prefix of the longer run's draws).

    .venv/bin/python bench/bootstrap.py [--iterations 10000] [--slow-iterations 1024]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from medrepro.studies.counterfactual.bootstrap import bootstrap_replicates, clustered_bootstrap_ci


def slow_bootstrap(values, clusters, iterations, seed=42, chunk=1024):
    keys = sorted(set(clusters))
    pos = {k: i for i, k in enumerate(keys)}
    sums, counts = [0.0] * len(keys), [0] * len(keys)
    for v, c in zip(values, clusters):
        sums[pos[c]] += v
        counts[pos[c]] += 1
    rng = np.random.default_rng(seed)
    reps, done = [], 0
    while done < iterations:
        m = min(chunk, iterations - done)
        for row in rng.integers(0, len(keys), size=(m, len(keys))).tolist():
            s = 0.0
            n = 0
            for i in row:
                s += sums[i]
                n += counts[i]
            reps.append(s / n)
        done += m
    srt = sorted(reps)

    def pct(q):
        p = (len(srt) - 1) * q / 100
        lo = math.floor(p)
        hi = min(lo + 1, len(srt) - 1)
        return srt[lo] + (srt[hi] - srt[lo]) * (p - lo)

    return sum(values) / len(values), pct(2.5), pct(97.5), reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--slow-iterations", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    rng = np.random.default_rng(0)
    clusters = [f"S{i:05d}" for i in rng.integers(0, a.sources, a.pairs)]
    clusters[: a.sources] = [f"S{i:05d}" for i in range(a.sources)]  # every source present
    values = (rng.random(a.pairs) < 0.4).astype(float)

    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        est, lo, hi = clustered_bootstrap_ci(values, clusters, iterations=a.iterations, seed=42)
        times.append(time.perf_counter() - t0)
    t_vec = min(times)

    t0 = time.perf_counter()
    s_est, s_lo, s_hi, s_reps = slow_bootstrap(values.tolist(), clusters, a.slow_iterations)
    t_slow = time.perf_counter() - t0
    t_slow_full = t_slow * a.iterations / a.slow_iterations

    v_reps = bootstrap_replicates(values, clusters, iterations=a.slow_iterations, seed=42)
    v_est, v_lo, v_hi = clustered_bootstrap_ci(values, clusters, iterations=a.slow_iterations, seed=42)
    max_rep = float(np.max(np.abs(v_reps - np.array(s_reps))))
    max_ci = max(abs(v_est - s_est), abs(v_lo - s_lo), abs(v_hi - s_hi))
    # prefix property: the shorter run's draws are the first rows of the 10,000-iteration run
    long_reps = bootstrap_replicates(values, clusters, iterations=a.iterations, seed=42)
    prefix_ok = bool(np.array_equal(long_reps[: a.slow_iterations], v_reps))

    print(f"clustered bootstrap: {a.pairs} pairs in {len(set(clusters))} sources, {a.iterations} iterations, seed 42")
    print(f"  estimate {est:.6f}  95% CI [{lo:.6f}, {hi:.6f}]")
    print(f"  vectorised (numpy, chunk 1024): {t_vec:.3f} s  (best of {a.repeats})  target < 1 s: "
          f"{'PASS' if t_vec < 1 else 'FAIL'}")
    print(f"  pure-Python loop: {t_slow:.3f} s for {a.slow_iterations} iterations on the same draws, "
          f"extrapolated to {a.iterations}: {t_slow_full:.2f} s")
    print(f"  speed-up (extrapolated): {t_slow_full / t_vec:.1f}x")
    print(f"  equality on {a.slow_iterations} iterations: max |replicate diff| {max_rep:.2e}, "
          f"max |estimate/CI diff| {max_ci:.2e} -> {'OK' if max(max_rep, max_ci) <= 1e-12 else 'MISMATCH'}; "
          f"draws are a prefix of the {a.iterations}-iteration run: {prefix_ok}")


if __name__ == "__main__":
    main()
