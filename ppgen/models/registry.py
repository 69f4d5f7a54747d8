"""The one registry of model classes: names to lazy ``"module:Class"`` targets.

Nothing is imported until a model is looked up, so code that only needs the names (the
``ppgen`` command's ``--help``) never loads torch. Saved fits name their model by class name
(``"GaussianMixture"``), so those are the keys; short names (``"gmm"``) are aliases for the
command line and :class:`ppgen.Imputer`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ppgen.models.base import GenerativeModel

__all__ = ["MODELS", "ModelRegistry", "register_model", "unregister_model"]


class ModelRegistry(Mapping[str, "type[GenerativeModel]"]):
    """A read-only mapping from model class names to model classes, imported on first lookup.

    ``MODELS["PPCA"]`` imports :mod:`ppgen.models.ppca` and returns the class; ``"PPCA" in
    MODELS``, ``len`` and iteration read names only and import nothing. Add entries with
    :func:`register_model`.
    """

    def __init__(self) -> None:
        self._targets: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._loaded: dict[str, type[GenerativeModel]] = {}

    def __getitem__(self, name: str) -> type[GenerativeModel]:
        target = self._targets[name]
        if name not in self._loaded:
            module, _, attribute = target.partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"ModelRegistry({self._targets!r})"

    @property
    def aliases(self) -> Mapping[str, str]:
        """Short names (``"gmm"``) and the class name each stands for, in registration order."""
        return dict(self._aliases)

    def target(self, name: str) -> str:
        """The ``"module:Class"`` string of a class name or alias, importing nothing."""
        return self._targets[self.canonical(name)]

    def canonical(self, name: str) -> str:
        """The class name for a class name or alias; ``KeyError`` for an unknown name."""
        name = self._aliases.get(name, name)
        if name not in self._targets:
            raise KeyError(name)
        return name

    def lookup(self, name: str) -> type[GenerativeModel]:
        """The class for a class name or alias, e.g. ``MODELS.lookup("gmm")``.

        Raises
        ------
        ValueError
            For an unknown name, listing the known ones.
        """
        try:
            return self[self.canonical(name)]
        except KeyError:
            known = ", ".join([*self._aliases, *self._targets])
            raise ValueError(f"unknown model {name!r}; known models: {known}") from None


#: Every model class by name, for loading saved fits and for the command line.
MODELS = ModelRegistry()


def register_model(name: str, target: str, *, alias: str | None = None) -> None:
    """Register a model class under ``name`` (its class name, as saved fits record it).

    Parameters
    ----------
    name : str
        Class name, e.g. ``"GaussianMixture"``.
    target : str
        ``"module:Class"``, imported when the model is first looked up.
    alias : str, optional
        A short name, e.g. ``"gmm"``, for the command line and :class:`ppgen.Imputer`.
    """
    module, sep, attribute = target.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    # Registering the same thing twice is harmless (a re-imported module); anything else that
    # reuses a name would change what saved files or commands mean.
    taken = [
        name in MODELS._aliases or MODELS._targets.get(name, target) != target,
        alias is not None
        and (alias in MODELS._targets or MODELS._aliases.get(alias, name) != name),
    ]
    for key, clash in zip((name, alias), taken, strict=True):
        if clash:
            raise ValueError(f"model name {key!r} is already registered")
    MODELS._targets[name] = target
    MODELS._loaded.pop(name, None)
    if alias is not None:
        MODELS._aliases[alias] = name


def unregister_model(name: str) -> None:
    """Remove a model registered by :func:`register_model` (with its alias), e.g. after a test."""
    name = MODELS.canonical(name)
    del MODELS._targets[name]
    MODELS._loaded.pop(name, None)
    for alias in [a for a, n in MODELS._aliases.items() if n == name]:
        del MODELS._aliases[alias]


for _name, _target, _alias in (
    ("GaussianMixture", "ppgen.models.gmm:GaussianMixture", "gmm"),
    ("HMM", "ppgen.models.hmm:HMM", "hmm"),
    ("HierarchicalVAE", "ppgen.models.hvae:HierarchicalVAE", "hvae"),
    ("PPCA", "ppgen.models.ppca:PPCA", "ppca"),
    ("VAE", "ppgen.models.vae:VAE", "vae"),
):
    register_model(_name, _target, alias=_alias)

# Issue 14: factor analysis.
register_model("FactorAnalysis", "ppgen.models.fa:FactorAnalysis", alias="fa")
register_model("BayesianPCA", "ppgen.models.bpca:BayesianPCA", alias="bpca")
# Issue 17: exact-likelihood families.
register_model("Autoregressive", "ppgen.models.autoregressive:Autoregressive", alias="ar")
register_model("Flow", "ppgen.models.flow:Flow", alias="flow")
register_model("RBM", "ppgen.models.rbm:RBM", alias="rbm")  # energy-based models (issue 18)
register_model("EBM", "ppgen.models.ebm:EBM", alias="ebm")
# Issue 15.
register_model("Diffusion", "ppgen.models.diffusion:Diffusion", alias="diffusion")
# Issue 16: the GAN (an implicit model, trained adversarially).
register_model("GAN", "ppgen.models.gan:GAN", alias="gan")
# Issue 21: not-MIWAE, the VAE with a self-masking missingness model (MNAR).
register_model("NotMIWAE", "ppgen.models.notmiwae:NotMIWAE", alias="notmiwae")
