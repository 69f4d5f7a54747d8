"""Reference numbers for tests/evaluate/test_synthetic_parity.py, from SDMetrics 0.32.

SDMetrics pins pandas < 3, so it runs in a venv of its own and is never a dependency of ppgen:

    python3 -m venv /work/venvs/sdm
    /work/venvs/sdm/bin/pip install "sdmetrics==0.32.*" "pandas<3"
    PYTHONPATH=. .venv/bin/python benchmarks/sdmetrics_reference.py write /tmp/parity
    /work/venvs/sdm/bin/python benchmarks/sdmetrics_reference.py compute /tmp/parity

``write`` (ppgen's venv) saves the tables of :func:`ppgen.testing.synthetic.parity_tables` and
each column's kind as CSV/JSON; ``compute`` (the SDMetrics venv) prints the per-column and
per-pair scores as a Python literal to paste into the test.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path


def write(directory: Path) -> None:
    from ppgen.data import Schema
    from ppgen.testing.synthetic import parity_tables

    directory.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for name, (real, synthetic) in parity_tables().items():
        real.to_csv(directory / f"{name}_real.csv", index=False)
        synthetic.to_csv(directory / f"{name}_synthetic.csv", index=False)
        schema = Schema.infer(real)
        kinds[name] = {
            c.name: "numerical" if c.kind in ("continuous", "count") else "categorical"
            for c in schema.columns
        }
    (directory / "kinds.json").write_text(json.dumps(kinds, indent=1))


def compute(directory: Path) -> None:
    import pandas as pd
    import sdmetrics
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_column import KSComplement, TVComplement

    kinds = json.loads((directory / "kinds.json").read_text())
    out = {"sdmetrics": sdmetrics.__version__}
    for name, sdtypes in kinds.items():
        real = pd.read_csv(directory / f"{name}_real.csv")
        synthetic = pd.read_csv(directory / f"{name}_synthetic.csv")
        columns = {}
        for column, sdtype in sdtypes.items():
            metric = KSComplement if sdtype == "numerical" else TVComplement
            columns[column] = float(metric.compute(real[column], synthetic[column]))
        pairs = {}
        for a, b in itertools.combinations(sdtypes, 2):
            if sdtypes[a] == sdtypes[b] == "numerical":
                score = CorrelationSimilarity.compute(real[[a, b]], synthetic[[a, b]])
            else:
                continuous = [c for c in (a, b) if sdtypes[c] == "numerical"] or None
                score = ContingencySimilarity.compute(
                    real[[a, b]], synthetic[[a, b]], continuous_column_names=continuous
                )
            pairs[f"{a}|{b}"] = float(score)
        report = QualityReport()
        metadata = {"columns": {c: {"sdtype": t} for c, t in sdtypes.items()}}
        report.generate(real, synthetic, metadata, verbose=False)
        shapes = float(report.get_properties().set_index("Property").loc["Column Shapes", "Score"])
        out[name] = {"columns": columns, "pairs": pairs, "report_shape": shapes}
    print(repr(out))


if __name__ == "__main__":
    {"write": write, "compute": compute}[sys.argv[1]](Path(sys.argv[2]))
