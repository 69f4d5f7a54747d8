"""Install a PyTorch build that fits this machine, quietly, before ppgen's own requirements.

A bare ``pip install torch`` on Linux pulls the multi-GB CUDA build (and its nvidia-* wheels)
from PyPI, which a machine without a GPU never uses. So, in this order:

1. a torch that is already installed is kept (no version is pinned: users choose theirs);
2. with a GPU (``nvidia-smi -L`` succeeds), pip's ordinary ``torch``;
3. otherwise a CPU build (version label ``+cpu``) offered by pip's own configuration (local
   wheel folders, mirrors), the newest one;
4. else PyTorch's CPU wheel index, when it answers within a few seconds;
5. else stop with a message saying how to install one: never the CUDA build by accident.

Usage: ``python tools/install_torch.py`` with the target environment's python.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=capture, text=True)


def has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def local_cpu_torch() -> str | None:
    """The newest ``+cpu`` torch that pip's configured sources offer, as a requirement."""
    done = pip("index", "versions", "torch", capture=True)
    versions = []
    for line in done.stdout.splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.split(":", 1)[1].split(",")]
    cpu = [v for v in versions if v.endswith("+cpu")]  # listed newest first
    return f"torch=={cpu[0]}" if cpu else None


def cpu_index_reachable() -> bool:
    try:
        urllib.request.urlopen(f"{CPU_INDEX}/torch/", timeout=5)
    except OSError:
        return False
    return True


def main() -> int:
    if importlib.util.find_spec("torch") is not None:
        print("torch already installed")
        return 0
    if has_gpu():
        return pip("install", "torch").returncode
    requirement = local_cpu_torch()
    if requirement is not None:
        print(f"installing {requirement} (CPU build from pip's configured sources)")
        return pip("install", requirement).returncode
    if not cpu_index_reachable():
        print(
            "error: found no CPU build of torch (no '+cpu' version among pip's sources and "
            f"{CPU_INDEX} unreachable); install the torch you want first, e.g. "
            "`.venv/bin/pip install torch==VERSION+cpu`, then run make again",
            file=sys.stderr,
        )
        return 1
    print(f"installing torch from PyTorch's CPU index ({CPU_INDEX})")
    return pip(
        "install", "--retries", "1", "--timeout", "15", "--index-url", CPU_INDEX, "torch",
    ).returncode  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
