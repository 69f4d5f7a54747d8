"""CPU time of ppgen's default GaussianMixture fit against scikit-learn's best of 10, one run.

    python benchmarks/gmm_default_cpu.py

The quick form of the "Default fit" table of ``gmm_vs_sklearn.py`` (issue 11's goal for the
GMM default: reach scikit-learn's ``n_init=10`` optimum in no more time), without its
50,000-row set: iris (150 x 4), wine (178 x 13) and the well-separated clusters (900 x 2 and
900 x 5, centres 100 apart) of ``gmm_vs_sklearn.py``, K = 3, full covariances. Both sides run
in the same process on one thread: ``ppgen.fit(GaussianMixture(3, "full"), data)`` (no
options) and ``sklearn.mixture.GaussianMixture(3, covariance_type="full", n_init=10,
random_state=0).fit(X)``; each is warmed up once, then timed 3 times (median process CPU
seconds). ``gap`` is ppgen's mean log-likelihood per row minus scikit-learn's (raw scale;
positive: ppgen higher). Writes benchmarks/results/gmm_default_cpu.md and .csv.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads, write_table  # noqa: E402

pin_threads(1)

from gmm_vs_sklearn import well_separated  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

import ppgen  # noqa: E402


def _cpu(fn, repeats: int = 3):
    """Median process CPU seconds of ``repeats`` calls after one untimed call, and the last
    call's result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), out


def main() -> None:
    warnings.filterwarnings("ignore")
    iris = ppgen.datasets.load("iris", label=False)
    wine = ppgen.datasets.load("wine", label=False)
    sets = [("iris (150 x 4)", iris), ("wine (178 x 13)", wine)]
    sets += [(f"well-separated (900 x {d})", well_separated(d)) for d in (2, 5)]
    rows = []
    for label, data in sets:
        x = data.to_numpy(dtype=float) if hasattr(data, "to_numpy") else data
        sk_s, sk = _cpu(
            lambda x=x: SkGaussianMixture(3, covariance_type="full", n_init=10, random_state=0).fit(
                x
            )  # fmt: skip
        )
        pp_s, fit = _cpu(
            lambda data=data: ppgen.fit(ppgen.GaussianMixture(3, "full"), data, progress=False)
        )
        rows.append({
            "data": label,
            "sklearn n_init=10 CPU s": round(sk_s, 4),
            "ppgen default CPU s": round(pp_s, 4),
            "CPU ratio": round(pp_s / sk_s, 2),
            "gap (nats/row)": f"{fit.score(data) - sk.score(x):.2e}",
        })  # fmt: skip
        print(rows[-1], flush=True)
    notes = (
        "Same process, one thread, median of 3 timed runs each (after one warm-up). Goal "
        "(issue 11): CPU ratio <= 1.0 with gap >= -1e-4. ppgen's default "
        "screens 10 k-means++ starts for up to 100 EM steps each (relative gain 1e-8), then "
        "finishes the best to 1e-8 nats/row, every EM step in GaussianMixture's fused float64 "
        "numpy kernel (complete continuous tables); scikit-learn runs each of its 10 k-means "
        "starts to 1e-3 nats/row."
    )
    write_table("gmm_default_cpu", rows, notes, title="ppgen default GMM fit vs scikit-learn")


if __name__ == "__main__":
    main()
