"""Fit CTGAN or TVAE (the ``ctgan`` package) to a training CSV and write samples; run by
benchmarks/compare.py in the ctgan venv (pandas < 3), never imported by ppgen.

    /work/venvs/ctgan/bin/python benchmarks/_ctgan_anchor.py ctgan train.csv out.csv N EPOCHS SEED

Prints one JSON line: train_s (wall), train_cpu_s (CPU seconds of this process), sample_s_per_1k.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import torch


def main(kind: str, train_path: str, out_path: str, n: int, epochs: int, seed: int) -> None:
    from ctgan import CTGAN, TVAE

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (ctgan samples with NumPy's global RNG)
    train = pd.read_csv(train_path)
    discrete = [c for c in train.columns if not pd.api.types.is_float_dtype(train[c])]
    # ctgan takes no missing values: labels get their own level, numbers the column mean.
    for column in train.columns:
        if column in discrete:
            train[column] = train[column].astype(str)
        else:
            train[column] = train[column].fillna(train[column].mean())
    model = (CTGAN if kind == "ctgan" else TVAE)(epochs=epochs)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(train, discrete_columns=discrete)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    synthetic = model.sample(1000)
    sample_s = time.perf_counter() - start
    synthetic.iloc[:n].to_csv(out_path, index=False)
    print(json.dumps({"train_s": train_s, "train_cpu_s": train_cpu_s, "sample_s_per_1k": sample_s}))


if __name__ == "__main__":
    kind, train_path, out_path, n, epochs, seed = sys.argv[1:7]
    main(kind, train_path, out_path, int(n), int(epochs), int(seed))
