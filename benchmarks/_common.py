"""Shared helpers for the benchmarks: thread pinning, timing, result tables.

Import this module and call :func:`pin_threads` *before* importing numpy, torch or scikit-learn,
so that the BLAS/OpenMP thread pools are created with the pinned size::

    from _common import pin_threads

    pin_threads(1)
    import numpy as np  # noqa: E402
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_PINNED: dict[str, Any] = {}


def pin_threads(n: int = 1) -> dict[str, Any]:
    """Use ``n`` threads in every numeric library, for every library alike.

    Sets the OpenMP/MKL/OpenBLAS environment variables (effective for libraries not yet imported),
    limits already-loaded BLAS/OpenMP pools with threadpoolctl when it is installed, and calls
    ``torch.set_num_threads(n)``. Returns what was done, for the notes.
    """
    n = int(n)
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    late = [m for m in ("numpy", "scipy", "sklearn") if m in sys.modules]
    info: dict[str, Any] = {"threads": n, "env": {v: os.environ[v] for v in _THREAD_VARS}}
    if late:
        info["imported_before_pinning"] = late
        try:
            from threadpoolctl import threadpool_limits

            _PINNED["limits"] = threadpool_limits(limits=n)  # keep the handle alive
            info["threadpoolctl"] = True
        except ImportError:
            info["threadpoolctl"] = False
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only allowed before any inter-op parallel work
        pass
    info["torch_threads"] = torch.get_num_threads()
    _PINNED.update(info)
    return info


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (``time.perf_counter``) and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float], Any]:
    """Call ``fn`` ``repeats`` times; return the median wall time, all times, the last result."""
    m = measure(fn, repeats)
    return m["wall"], m["walls"], m["result"]


def measure(fn: Callable[[], Any], repeats: int = 3) -> dict[str, Any]:
    """Call ``fn`` ``repeats`` times; median wall and CPU seconds, all of them, the last result.

    CPU time (``time.process_time``: all threads of this process) equals wall time for a
    single-threaded call on an idle machine; on a shared machine it is the steadier of the two.
    """
    walls, cpus, out = [], [], None
    for _ in range(int(repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "walls": walls,
        "cpus": cpus,
        "result": out,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:  # noqa: BLE001 (any import failure just means "not available")
        return "not installed"


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "ppgen"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        if not dirty:
            return rev
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "ppgen"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
        digest = hashlib.sha1(diff).hexdigest()[:10]
        return f"{rev} + uncommitted changes in ppgen/ (sha1 of `git diff HEAD -- ppgen`: {digest})"
    except Exception:  # noqa: BLE001
        return "unknown"


def machine_info() -> dict[str, str]:
    """CPU, cores, load, library versions, date: what a timing depends on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "load average (1, 5, 15 min) when written": load,
        "threads used": str(_PINNED.get("threads", "not pinned")),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "pyro": _version("pyro"),
        "scikit-learn": _version("sklearn"),
        "ppgen": _version("ppgen"),
        "git": _git_revision(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub markdown table; columns are the union of the rows' keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``results/<name>.csv``; columns are the union of the rows' keys."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return path


def write_table(
    name: str,
    rows: list[dict[str, Any]],
    notes: str = "",
    *,
    title: str | None = None,
    extra: str = "",
) -> tuple[Path, Path]:
    """Write ``results/<name>.md`` (table, notes, machine info) and ``results/<name>.csv``.

    ``extra`` is more markdown placed after the notes (e.g. a second table).
    """
    md_path = RESULTS / f"{name}.md"
    csv_path = write_csv(name, rows)
    machine = "\n".join(f"- {k}: {v}" for k, v in machine_info().items())
    parts = [f"# {title or name}", markdown_table(rows)]
    if notes:
        parts += ["## Notes", notes.strip()]
    if extra:
        parts.append(extra.strip())
    parts += ["## Machine", machine]
    md_path.write_text("\n\n".join(parts) + "\n")
    return md_path, csv_path


class FitTimeout(Exception):
    """A fit ran past its time budget."""


def with_budget(fn, seconds):
    """Call ``fn``; raise FitTimeout after ``seconds`` of wall time (SIGALRM; Unix only)."""
    if not seconds or not hasattr(signal, "SIGALRM"):
        return fn()

    def _alarm(signum, frame):
        raise FitTimeout

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def time_default_fit(fit, make_model, data, seed, repeats, budget, warning):
    """:func:`measure` ``fit(make_model(), data)``, the literal default call, at seed 0, and
    ``fit(make_model(), data, seed=seed)`` otherwise (the other seeds show the result is not seed
    luck); None if it ran past ``budget`` seconds. Adds ``"warned"``: whether a ``warning``
    (e.g. ``ppgen.ConvergenceWarning``) was raised.
    """

    def call():
        model = make_model()
        return fit(model, data) if seed == 0 else fit(model, data, seed=seed)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", warning)
            m = measure(lambda: with_budget(call, budget), repeats)
    except FitTimeout:
        return None
    m["warned"] = any(issubclass(w.category, warning) for w in caught)
    return m
