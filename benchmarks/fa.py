"""ppgen's FactorAnalysis against factor_analyzer on BFI: time to the oblimin solution, and
parity of the loadings with psych 2.2.9.

    python benchmarks/fa.py            # BFI complete cases (2445 x 25), 5 factors, 5 repeats
    python benchmarks/fa.py --quick    # 1 repeat

factor_analyzer breaks with scikit-learn >= 1.8 (this project's venv has 1.9), so it runs in its
own venv (``python3 -m venv /work/venvs/fa; /work/venvs/fa/bin/pip install "scikit-learn<1.8"
factor_analyzer``; override with ``--fa-python``) as a subprocess that times its own fits (the
process start and imports are not counted). Both on one thread, complete cases (factor_analyzer
fills missing entries with column medians; psych and ppgen do not, so complete cases are the fair
comparison), 5 factors, oblimin, minres and ML. Time: median wall seconds of ``repeats`` fits
from the data table to the rotated loadings (ppgen: ``ppgen.fit`` + ``solution``). Parity: largest
absolute difference from psych's loadings (tests/fixtures/psych/cc_oblimin_<fm>.csv), factor
columns matched to psych's by the best permutation and signs. Writes benchmarks/results/fa.md and
.csv.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, pin_threads, write_table  # noqa: E402

THREADS = pin_threads(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402

PSYCH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "psych"
FA_PYTHON = "/work/venvs/fa/bin/python"
K = 5

_FA_SCRIPT = """
import json, os, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, sklearn, factor_analyzer
from factor_analyzer import FactorAnalyzer
x = pd.read_csv(sys.argv[1]).to_numpy()
from importlib.metadata import version
out = {"version": version("factor_analyzer"), "sklearn": sklearn.__version__}
for fm in ("minres", "ml"):
    times = []
    for _ in range(int(sys.argv[2])):
        t0 = time.perf_counter()
        fa = FactorAnalyzer(n_factors=int(sys.argv[3]), rotation="oblimin", method=fm)
        fa.fit(x)
        times.append(time.perf_counter() - t0)
    out[fm] = {"time": statistics.median(times), "loadings": fa.loadings_.tolist()}
print(json.dumps(out))
"""


def aligned_error(L: np.ndarray, ref: np.ndarray) -> float:
    """Largest |L - ref| over the best column permutation and signs."""
    best = np.inf
    for perm in itertools.permutations(range(L.shape[1])):
        M = L[:, perm]
        M = M * np.sign((M * ref).sum(0))
        best = min(best, float(np.abs(M - ref).max()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fa-python", default=FA_PYTHON)
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    data = ppgen.datasets.load("bfi").iloc[:, :25].dropna()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bfi.csv"
        data.to_csv(csv, index=False)
        proc = subprocess.run(
            [args.fa_python, "-c", _FA_SCRIPT, str(csv), str(repeats), str(K)],
            capture_output=True,
            text=True,
            check=True,
            env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
    peer = json.loads(proc.stdout)
    rows = []
    for fm in ("minres", "ml"):
        ref = pd.read_csv(PSYCH / f"cc_oblimin_{fm}.csv", index_col=0).to_numpy()

        def ours(fm: str = fm) -> np.ndarray:
            fit = ppgen.fit(ppgen.FactorAnalysis(K, rotation="oblimin", fm=fm), data)
            return fit.model.solution(fit.params).loadings

        ours(fm)  # warm-up: imports and first-call costs are not the fit's
        m = measure(ours, repeats)
        theirs = np.asarray(peer[fm]["loadings"])
        rows.append(
            {
                "fm": fm,
                "ppgen s": round(m["wall"], 4),
                "factor_analyzer s": round(peer[fm]["time"], 4),
                "ratio": round(m["wall"] / peer[fm]["time"], 2),
                "ppgen max |diff| vs psych": f"{aligned_error(m['result'], ref):.1e}",
                "factor_analyzer max |diff| vs psych": f"{aligned_error(theirs, ref):.1e}",
            }
        )
        print(rows[-1], flush=True)
    notes = (
        f"BFI complete cases ({len(data)} x 25), {K} factors, oblimin; median of {repeats} "
        f"fits on one thread. factor_analyzer {peer['version']} with scikit-learn "
        f"{peer['sklearn']} (its own venv). psych 2.2.9 references: "
        "tests/fixtures/psych/cc_oblimin_<fm>.csv. ppgen: `ppgen.fit(FactorAnalysis(5, "
        "rotation='oblimin', fm=fm), data)` (direct fit of the correlation matrix; for ML, EM then "
        "confirms the maximum of the exact likelihood) and `fit.model.solution(fit.params)`.\n"
        f"Threads: {THREADS.get('threads')}. The machine is shared (see its load below)."
    )
    name = "fa_quick" if args.quick else "fa"
    md, _ = write_table(name, rows, notes, title="FactorAnalysis vs factor_analyzer (BFI)")
    print(md.read_text())


if __name__ == "__main__":
    main()
