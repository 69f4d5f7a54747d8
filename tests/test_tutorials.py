"""Run every tutorial (``tutorials/NN-*.py``, jupytext percent format) as a notebook.

Each tutorial is converted with jupytext and executed cell by cell with nbclient in a fresh
kernel, so a tutorial that no longer runs against the current API fails the suite with the
failing cell in the message.

The kernel is pinned to this interpreter: a kernelspec pointing at ``sys.executable`` is
installed into a temporary directory that ``JUPYTER_PATH`` puts first, under a name no user
or system kernelspec can shadow. Matplotlib uses the inline backend, which renders figures
headlessly into the notebook as PNG outputs (``MPLBACKEND=Agg`` would render nothing: ipykernel
only installs the inline backend when ``MPLBACKEND`` is unset).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
PATHS = sorted(p for p in TUTORIALS.glob("*.py") if re.match(r"\d\d", p.name))
KERNEL = "ppgen-tutorials"
CELL_TIMEOUT = 600  # seconds per cell
PROBE = "import sys; print(sys.prefix)"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_tutorials_are_found() -> None:
    assert PATHS, f"no tutorials/NN-*.py found in {TUTORIALS}"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory):
    """A kernel running this very interpreter, headless and single-threaded."""
    prefix = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        env.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setenv(var, "1")
        kernelspec.install(kernel_name=KERNEL, display_name="ppgen tutorials", prefix=str(prefix))
        yield KERNEL


def _images(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_tutorial_runs(path: Path, kernel_name: str, tmp_path: Path) -> None:
    nb = jupytext.read(path)
    # An extra first cell reports which environment the kernel runs in (checked below).
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT,
        # A loaded machine can take over nbclient's default 60 s to start a kernel; a kernel
        # that merely starts late is not a broken tutorial.
        startup_timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        failure = ANSI.sub("", str(err))  # the failing cell and its traceback, uncoloured
    elapsed = time.perf_counter() - start
    if failure is not None:  # failing outside `except` keeps the report to this one message
        pytest.fail(f"{path.name} failed after {elapsed:.0f} s:\n{failure}", pytrace=False)

    probe = "".join(out.get("text", "") for out in nb.cells[0].outputs).strip()
    assert Path(probe) == Path(sys.prefix), (
        f"the kernel ran {probe!r}, not this environment ({sys.prefix})"
    )
    n_images = _images(nb)
    assert n_images >= 1, f"{path.name} produced no image output"
    print(f"{path.name}: {elapsed:.1f} s, {n_images} images")
