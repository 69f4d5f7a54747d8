"""Record the tensor operations of one call and replay them: a tensor function without Python.

:func:`record` runs ``fn(x)`` once under a ``TorchDispatchMode`` that sees every ATen operation
after ``torch.func``'s transforms are lowered (``vmap``'s batching, ``grad``'s backward pass are
ATen operations too) and keeps them in order: each operation's function, its arguments (a tensor
is either the input, the output of an earlier operation, or a constant captured from the
program, such as the data) and its outputs. The returned function executes the same operations
on a new input; :func:`torch.jit.trace` of it removes the Python per operation as well.

The replay is the original computation only where the program's Python does not depend on the
input's values: operations chosen by a Python branch on a tensor value are burned in. The
caller must ensure that (:class:`~ppgen.infer.potential.Potential` records only programs that
``torch.func.vmap`` runs, and vmap refuses such branches on the batched values) and check the
replay against the program. This is what ``torch.fx.experimental.proxy_tensor.make_fx`` does,
without its import of ``torch._dynamo`` (over a second of CPU on first use).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

__all__ = ["record", "compile_function"]


class _Slot:
    """An argument that is the value of an earlier operation (index into the values)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Recorder(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in torch._dynamo.disable, whose first call
        # imports torch._dynamo (over a second of CPU); this mode never runs under
        # torch.compile.
        return False

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        # id(tensor) -> index of its value; the tensors are kept alive so ids are not reused.
        self.index: dict[int, int] = {id(x): 0}
        self.alive: list[torch.Tensor] = [x]
        self.ops: list[tuple[Any, Any, Any, int]] = []
        self.checks = False  # an operation without tensor outputs ran (a check that may raise)

    def _arg(self, a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            i = self.index.get(id(a))
            return a if i is None else _Slot(i)  # unknown tensors are constants (the data)
        return a

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        leaves, _ = tree_flatten(out)
        if not any(isinstance(leaf, torch.Tensor) for leaf in leaves):
            self.checks = True
        self.ops.append((func, tree_map(self._arg, args), tree_map(self._arg, kwargs), len(leaves)))
        for leaf in leaves:
            # Non-tensor outputs (a Python number from .item() on a constant) take a slot too,
            # so that indices stay aligned; later operations received them as plain values.
            if isinstance(leaf, torch.Tensor):
                self.index[id(leaf)] = len(self.alive)
            self.alive.append(leaf)
        return out


def record(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, Callable]:
    """Run ``fn(x)`` and return its result and a function replaying its operations on a new
    input of ``x``'s shape, dtype and device (its output: the same structure of tensors)."""
    recorder = _Recorder(x)
    with recorder:
        result = fn(x)
    leaves, spec = tree_flatten(result)
    missing = [leaf for leaf in leaves if id(leaf) not in recorder.index]
    if missing:
        raise RuntimeError("an output of the function is not computed from its input")
    outputs = [recorder.index[id(leaf)] for leaf in leaves]
    ops = recorder.ops

    def resolve(values: list[Any]) -> Callable[[Any], Any]:
        return lambda a: values[a.index] if isinstance(a, _Slot) else a

    def replay(u: torch.Tensor) -> Any:
        values: list[Any] = [u]
        get = resolve(values)
        for func, args, kwargs, n in ops:
            out = func(*tree_map(get, args), **tree_map(get, kwargs))
            if n == 1:
                values.append(tree_flatten(out)[0][0])
            else:
                values.extend(tree_flatten(out)[0])
        return tree_unflatten([values[i] for i in outputs], spec)

    replay.checks = recorder.checks  # type: ignore[attr-defined]
    return result, replay


def compile_function(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[Any, Callable]:
    """:func:`record` ``fn`` at ``x``, then ``torch.jit.trace`` the replay (TorchScript runs the
    operations without Python; the replay itself when tracing fails). Returns ``fn(x)`` and the
    compiled function."""
    result, replay = record(fn, x)
    if replay.checks:
        # Operations without outputs are checks (linalg.cholesky's _linalg_check_errors raises
        # on a failed factorization): TorchScript drops them as dead code, so the program's
        # errors would vanish (a chain would keep a garbage factor instead of NaN). The Python
        # replay runs them.
        return result, replay
    with warnings.catch_warnings():
        # torch.jit.trace is deprecated in favour of torch.compile, whose compilation costs
        # seconds of CPU per function here; tracer warnings concern Python values we burn in.
        warnings.simplefilter("ignore")
        try:
            return result, torch.jit.trace(replay, (x,), check_trace=False)
        except Exception:  # noqa: BLE001 - the replay runs as it is
            return result, replay
