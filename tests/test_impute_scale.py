"""Fit.impute on tables larger than one chunk of rows (issue 21's 10^6-row imputation): rows are
drawn chunk by chunk, each row from its own conditional, observed entries kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import ppgen
import ppgen.infer.result as result

torch.set_num_threads(1)


def test_large_tables_are_imputed_in_chunks_of_rows(monkeypatch):
    rng = np.random.default_rng(0)
    n = 2600
    x = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.5], [0.0, 0.0, 1.0]])
    df = pd.DataFrame(x, columns=list("abc")).mask(rng.random((n, 3)) < 0.2)
    fit = ppgen.fit(ppgen.GaussianMixture(1), df, method="em", seed=0)
    whole = fit.impute(df, 2, seed=3)  # one chunk: 2^23 / 3^2 rows
    calls = []
    impute = fit.model.impute

    def counted(x, mask, params):
        calls.append(len(x))
        return impute(x, mask, params)

    monkeypatch.setattr(fit.model, "impute", counted)
    monkeypatch.setattr(result, "_IMPUTE_CHUNK_CELLS", 9)  # chunks of 1024 rows
    chunked = fit.impute(df, 2, seed=3)
    assert calls == [1024, 1024, 552] * 2
    observed = df.notna()
    for table, single in zip(chunked, whole, strict=True):
        assert table.notna().all().all() and table.index.equals(df.index)
        pd.testing.assert_frame_equal(table[observed], df[observed])
        # The first chunk is the same draw as a table of those rows alone; the rest differ
        # from the single call only by the random stream.
        assert not table.equals(single)
    first = fit.impute(df.iloc[:1024], 1, seed=3)[0]
    pd.testing.assert_frame_equal(chunked[0].iloc[:1024], first)
    # Same conditional either way: the regression of an imputed b on an observed a.
    rows = df["b"].isna() & df["a"].notna()
    slopes = [
        np.polyfit(df.loc[rows, "a"], pd.concat(t)[: rows.sum()], 1)[0]
        for t in ([chunked[0].loc[rows, "b"]], [whole[0].loc[rows, "b"]])
    ]
    assert abs(slopes[0] - slopes[1]) < 0.15
