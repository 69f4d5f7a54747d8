"""Long work shows progress on a terminal and nothing elsewhere (issue 13).

A child interpreter runs a short NUTS fit and bootstrap imputer, once with its stderr on a
pseudo-terminal (``pty``) and once on a pipe: the bars (NUTS chains and their warm-up and sampling
stages, the bootstrap refits) reach the terminal, ``progress=False`` silences them there, and a
pipe gets nothing at all.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest

CHILD = r"""
import sys, warnings
import numpy as np
import ppgen
warnings.simplefilter("ignore")
x = np.random.default_rng(0).normal(size=(40, 2))
options = dict(method="pyro-nuts", num_samples=10, warmup_steps=10, num_chains=2, seed=0)
ppgen.fit(ppgen.GaussianMixture(1, "diag"), x, progress=False, **{**options, "num_chains": 1})
quiet = {"progress": False}
ppgen.Imputer(n_imputations=2, method="em", proper="bootstrap", fit_options=quiet).fit(x)
sys.stderr.write("<quiet above>")
sys.stderr.flush()
ppgen.fit(ppgen.GaussianMixture(1, "diag"), x, **options)
x[0, 0] = np.nan
ppgen.Imputer(n_imputations=3, method="em", proper="bootstrap").fit(x)
print("done")
"""


def _child(stderr_on_tty: bool) -> tuple[str, str]:
    """(stdout, stderr) of the child, its stderr a pseudo-terminal or a pipe."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CI", None)
    if not stderr_on_tty:
        done = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide, where tqdm draws nothing: size it as a window.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:  # drain the terminal as the child writes, or its writes would block
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            proc.kill()
            pytest.fail("the child wrote nothing for 300 s")
        try:
            chunk = os.read(master, 4096)
        except OSError as exc:  # EIO: the child closed its end of the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stdout = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return stdout, b"".join(chunks).decode(errors="replace")


def test_bars_on_a_terminal_and_quiet_when_asked():
    stdout, terminal = _child(stderr_on_tty=True)
    assert stdout.strip() == "done"
    quiet, shown = terminal.split("<quiet above>")
    assert quiet == ""  # progress=False: nothing, even on a terminal
    # NUTS: which chain, which stage, and the kernel's step size.
    for text in ("nuts chain 1/2 warmup", "nuts chain 1/2 sample", "nuts chain 2/2 sample"):
        assert text in shown
    # Each chain's start and each new stage are drawn at once (other steps every 0.1 s).
    assert all(f"| {n}/40" in shown for n in (0, 10, 20, 30))
    assert "step size" in shown and "acc. prob" in shown
    assert "bootstrap refits" in shown


def test_nothing_when_stderr_is_not_a_terminal():
    stdout, stderr = _child(stderr_on_tty=False)
    assert stdout.strip() == "done"
    assert stderr == "<quiet above>"
