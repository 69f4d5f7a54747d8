"""One rank of the distributed-EM test (tests/infer/test_em_distributed.py): joins a 2-rank gloo
group on 127.0.0.1 and saves, per case, the iterates of EM on its share of the rows from the
shared start, then a full run of the engine (its own starts) to ``out_dir/rank{r}.pt``.

Usage: python _em_worker.py RANK WORLD_SIZE PORT OUT_DIR
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _em_cases import CASES, RUN, RUN_OPTIONS, STEPS, problem, start  # noqa: E402

from ppgen.infer.engines.em import EM, EmOptions, em_iteration  # noqa: E402


def main() -> None:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    results = {}
    try:
        for case in CASES:
            prob = problem(case, rank)
            params, trace = start(case), []
            with torch.no_grad():
                for _ in range(STEPS):
                    params, objective = em_iteration(prob, params)
                    trace.append(({k: v.clone() for k, v in params.items()}, float(objective)))
            # Whether this rank's GaussianMixture statistics came from the fused kernel.
            seen = getattr(prob.model, "_fused_rows", None)
            results[case] = {"trace": trace, "kernel": seen is not None and seen[2] is not None}
            if case in RUN:
                run = EM().run(prob, EmOptions(**RUN_OPTIONS))
                results[case].update(params=run.params, losses=run.losses)
    finally:
        torch.distributed.destroy_process_group()
    torch.save(results, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
