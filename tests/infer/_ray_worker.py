"""The checks of ``_distributed_worker.py`` with Ray Train's ``TorchTrainer`` as the launcher.

``python _ray_worker.py DIR`` starts a local Ray cluster of 2 CPUs and a ``TorchTrainer`` of 2
workers (gloo on CPU): Ray starts the process group, and each worker runs the same checks
(``_distributed_worker.main``), so ppgen's ``distributed=True`` joins the group Ray made.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

HERE = Path(__file__).parent


def checks(config: dict) -> None:
    import torch

    sys.path.insert(0, config["here"])
    import _distributed_worker as worker

    assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 2
    worker.main(Path(config["out"]), "fast")


def main(out: Path) -> None:
    # The local cluster's processes inherit this environment (PYTHONPATH: this checkout's
    # ppgen; one thread): no runtime_env to set up per job. No usage report (nothing to send
    # it to here).
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        trainer = TorchTrainer(
            checks,
            train_loop_config={"out": str(out), "here": str(HERE)},
            scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
            run_config=RunConfig(storage_path=str(out / "ray"), name="ppgen"),
        )
        trainer.fit()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
