"""Where ppgen's HMM EM spends its time, to compare two source trees (issue 11 follow-up).

    PYTHONPATH=<tree> python benchmarks/hmm_em_overhead.py [--skip-large]

Prints, for the tree on PYTHONPATH, process CPU time on one thread of (a) one forward-backward
(``HMM.posteriors``, the E-step) on random log-emissions of shapes (S, T, K) = 1 x 100 x 2,
10 x 200 x 3, 10 x 1000 x 4, 50 x 1000 x 4 (median of repeated calls), and (b) the default fit
``ppgen.fit(HMM(K, ...), data)`` (no options) on discoveries (1 x 100, Poisson K=2), the
well-separated data (10 x 200, diagonal K=3) and the synthetic Gaussian data (10 x 300 and
50 x 1000, full K=4) of ``hmm_vs_hmmlearn.py``, with the total log-likelihood reached. Run it
with PYTHONPATH set to each tree (e.g. main and a branch) for a before/after table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads  # noqa: E402

pin_threads(1)

import torch  # noqa: E402
from hmm_vs_hmmlearn import simulate, well_separated  # noqa: E402

import ppgen  # noqa: E402
from ppgen.models.hmm import HMM  # noqa: E402

warnings.filterwarnings("ignore", category=ppgen.ConvergenceWarning)


def _cpu(fn, repeats: int) -> float:
    """Median process CPU seconds of ``repeats`` calls (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def estep_seconds(S: int, T: int, K: int) -> float:
    """CPU seconds of one ``posteriors`` call on random log-emissions (S, T, K), float64."""
    g = torch.Generator().manual_seed(0)
    ll = torch.randn(S, T, K, generator=g, dtype=torch.float64)
    A = torch.rand(K, K, generator=g, dtype=torch.float64) + 0.1
    A = A / A.sum(-1, keepdim=True)
    pi = torch.full((K,), 1.0 / K, dtype=torch.float64)
    model = HMM(K)
    # Stand-ins for a built model's emissions and chain: only the recursions are timed.
    model.emission = type("Fixed", (), {"log_prob": staticmethod(lambda x, m, p: ll)})()
    model._chain = lambda params: (pi.log(), A.log())
    x = torch.zeros(S, T, 1, dtype=torch.float64)
    return _cpu(lambda: model.posteriors(x, None, {}), 20 if S * T > 5000 else 100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="leave out 50 x 1000 fits")
    args = parser.parse_args(argv)
    for shape in [(1, 100, 2), (10, 200, 3), (10, 1000, 4), (50, 1000, 4)]:
        print(f"E-step {' x '.join(map(str, shape))}: {1e3 * estep_seconds(*shape):.3f} ms cpu")
    disc = ppgen.datasets.load("discoveries")[["discoveries"]]
    sets = [
        ("discoveries 1 x 100, Poisson K=2", disc, lambda: ppgen.HMM(2, "poisson"), 3),
        ("well-separated 10 x 200, diag K=3", well_separated()[0],
         lambda: ppgen.HMM(3, "gaussian", "diag"), 3),
        ("synthetic 10 x 300, full K=4", simulate(10, 300)[0], lambda: ppgen.HMM(4), 3),
    ]  # fmt: skip
    if not args.skip_large:
        sets.append(
            ("synthetic 50 x 1000, full K=4", simulate(50, 1000)[0], lambda: ppgen.HMM(4), 1)
        )
    for label, data, make, repeats in sets:
        fits = []

        def one(make=make, data=data, fits=fits):
            fits.append(ppgen.fit(make(), data, progress=False))

        seconds = _cpu(one, repeats)
        fit = fits[-1]
        print(
            f"default fit {label}: {seconds:.3f} s cpu, total log-lik "
            f"{float(fit.log_prob(data).sum()):.6f}, winner ran {fit.info['n_steps']} iterations"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
