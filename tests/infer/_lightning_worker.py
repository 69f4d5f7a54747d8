"""The checks of ``_distributed_worker.py`` with Lightning's DDP on CPU as the launcher.

``python _lightning_worker.py DIR`` starts a ``pytorch_lightning.Trainer(accelerator="cpu",
devices=2, strategy="ddp")``: Lightning re-runs this script as rank 1, starts the gloo process
group itself, and both ranks then run the same checks (``_distributed_worker.main``) from a
LightningModule hook, so ``ppgen``'s ``distributed=True`` joins the group Lightning made
instead of starting its own (the "user already has a launcher" case of issue 20). The Trainer
itself only takes one trivial step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
import _distributed_worker as worker  # noqa: E402


class Checks(pl.LightningModule):
    """Runs the distributed checks when Lightning's process group is up."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))  # DDP needs a parameter

    def on_fit_start(self) -> None:
        assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 2
        worker.main(self.out, "fast")

    def training_step(self, batch, batch_idx):
        return (self.weight * batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=1)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Checks(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
