"""Which models the command line builds, and from which options.

Each command-line model is one :class:`CliModel` declaration: its short name in
:data:`ppgen.models.MODELS`, the options it takes (and which constructor arguments they set), and
its default fitting method. Options are declared once in :data:`OPTIONS`; ``ppgen fit`` and
``ppgen impute`` add those their models use, and an option given to a model that does not take it
is one error line naming the models that do.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ppgen.cli._common import positive_int, positive_ints
from ppgen.models import MODELS

if TYPE_CHECKING:
    from ppgen.models.base import GenerativeModel

EMISSIONS = ("gaussian", "poisson", "negbinomial", "categorical", "mixed")

#: Model options of the command line: argparse destination -> (flag, argparse keywords).
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "n_components": (
        "--n-components",
        {
            "type": positive_int,
            "metavar": "K",
            "help": "mixture components (gmm), latent dimensions (ppca) or factors (fa); "
            "required for them",
        },
    ),
    "covariance_type": (
        "--covariance-type",
        {
            # mclust's 14 structures (ppgen.models.covariances.STRUCTURES; no torch import here)
            "choices": (
                "full",
                "diag",
                "EII",
                "VII",
                "EEI",
                "VEI",
                "EVI",
                "VVI",
                "EEE",
                "VEE",
                "EVE",
                "VVE",
                "EEV",
                "VEV",
                "EVV",
                "VVV",
            ),
            "help": "gmm: full, diag or one of mclust's structures EII ... VVV; hmm with "
            "gaussian or mixed emissions: full or diag (default: full)",
        },
    ),
    "n_states": (
        "--n-states",
        {"type": positive_int, "metavar": "K", "help": "hmm: hidden states"},
    ),
    "emission": (
        "--emission",
        {
            "choices": EMISSIONS,
            "help": "hmm: emission family of every column; mixed infers each column's kind "
            "(default: gaussian)",
        },
    ),
    "order_by": (
        "--order-by",
        {
            "metavar": "COLUMN",
            "help": "hmm: number the states by their mean of this column (label switching)",
        },
    ),
    "n_latent": (
        "--n-latent",
        {
            "type": positive_ints,
            "metavar": "Q",
            "help": "vae: latent dimensions (default 8); hvae: widths of the latent layers, "
            "bottom first, e.g. 16,8 (the default)",
        },
    ),
    "hidden": (
        "--hidden",
        {
            "type": positive_ints,
            "metavar": "H,H",
            "help": "vae, hvae, ar, flow and ebm: widths of the hidden layers, e.g. 128,128",
        },
    ),
    # fa (kept equal to ppgen.models.rotations.ROTATIONS and ppgen.models.fa.FMS by a test;
    # spelled out so that --help imports no numpy)
    "rotation": (
        "--rotation",
        {
            "choices": ("oblimin", "varimax", "quartimax", "geomin", "promax", "none"),
            "help": "fa: rotation of the reported loadings (default: oblimin)",
        },
    ),
    "fm": (
        "--fm",
        {"choices": ("ml", "minres"), "help": "fa: estimator (default: ml)"},
    ),
}


def _fa_options(options: dict[str, Any]) -> dict[str, Any]:
    if options.get("rotation") == "none":
        options["rotation"] = None
    return options


# Energy-based models (issue 18).
OPTIONS.update(
    {
        "n_hidden": (
            "--n-hidden",
            {"type": positive_int, "metavar": "H", "help": "rbm: hidden units; required"},
        ),
        "visible": (
            "--visible",
            {
                "choices": ("bernoulli", "gaussian"),
                "help": "rbm: visible units, bernoulli for 0/1 columns or gaussian for "
                "continuous ones (default: bernoulli)",
            },
        ),
    }
)


def _check_hmm(args: argparse.Namespace) -> None:
    emission = args.emission or "gaussian"
    if args.covariance_type is not None and emission not in ("gaussian", "mixed"):
        raise ValueError(
            f"--covariance-type applies to gaussian and mixed emissions, not {emission}"
        )


def _one_latent(options: dict[str, Any]) -> dict[str, Any]:
    if "n_latent" in options:
        (width, *more) = options["n_latent"]
        if more:
            raise ValueError("--n-latent of --model vae is one number; hvae takes several")
        options["n_latent"] = width
    return options


@dataclass(frozen=True)
class CliModel:
    """How the command line builds one model.

    Attributes
    ----------
    name : str
        Short name, an alias in :data:`ppgen.models.MODELS`.
    help : str
        One phrase for ``--model``'s help.
    options : tuple of str
        Destinations in :data:`OPTIONS` the model takes; each sets the constructor argument of
        the same name.
    required : tuple of str
        Options the command line insists on (the constructor's required arguments).
    check : callable, optional
        Further checks of the parsed arguments, raising ``ValueError``.
    convert : callable, optional
        Adjusts the constructor arguments (e.g. one latent width for the VAE).
    sequences : bool
        Whether the model takes sequences (``--sequence-col``, ``--time-col``).
    """

    name: str
    help: str
    options: tuple[str, ...]
    required: tuple[str, ...] = ()
    check: Callable[[argparse.Namespace], None] | None = None
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    sequences: bool = False

    def build(self, args: argparse.Namespace) -> GenerativeModel:
        """The model named by ``--model`` with the options given (which are checked)."""
        options = self.arguments(args)
        try:
            return MODELS.lookup(self.name)(**options)
        except TypeError as exc:  # a constructor argument of the wrong type
            raise ValueError(f"--model {self.name}: {exc}") from None

    def arguments(self, args: argparse.Namespace) -> dict[str, Any]:
        """Constructor arguments from the parsed options, after checking them."""
        for dest in self.required:
            if getattr(args, dest) is None:
                raise ValueError(f"--model {self.name} needs {OPTIONS[dest][0]}")
        if self.check is not None:
            self.check(args)
        options = {d: getattr(args, d) for d in self.options if getattr(args, d) is not None}
        return self.convert(options) if self.convert is not None else options


#: The models ``ppgen fit`` builds, by short name.
FIT_MODELS: dict[str, CliModel] = {
    m.name: m
    for m in (
        CliModel(
            "gmm",
            "Gaussian mixture",
            ("n_components", "covariance_type"),
            required=("n_components",),
        ),
        CliModel("ppca", "probabilistic PCA", ("n_components",), required=("n_components",)),
        CliModel(
            "hmm",
            "hidden Markov model",
            ("n_states", "emission", "covariance_type", "order_by"),
            required=("n_states",),
            check=_check_hmm,
            sequences=True,
        ),
        CliModel(
            "vae",
            "variational autoencoder",
            ("n_latent", "hidden"),
            convert=_one_latent,
        ),
        CliModel("hvae", "hierarchical (ladder) VAE", ("n_latent", "hidden")),
        CliModel("bpca", "Bayesian PCA with ARD", ("n_components",)),
        CliModel(
            "fa",
            "factor analysis",
            ("n_components", "rotation", "fm"),
            required=("n_components",),
            convert=_fa_options,
        ),
    )
}


FIT_MODELS.update(
    {
        "rbm": CliModel(
            "rbm",
            "restricted Boltzmann machine (contrastive divergence)",
            ("n_hidden", "visible"),
            required=("n_hidden",),
        ),
        "ebm": CliModel("ebm", "neural energy-based model (Langevin PCD)", ("hidden",)),
    }
)


def add_model_options(
    parser: argparse.ArgumentParser,
    models: Mapping[str, CliModel],
    help: Mapping[str, str] | None = None,
) -> None:
    """Add the options ``models`` take to ``parser`` (each once; ``help`` overrides texts)."""
    used = {dest for model in models.values() for dest in model.options}
    for dest, (flag, kwargs) in OPTIONS.items():
        if dest in used:
            kwargs = {**kwargs, "help": (help or {}).get(dest, kwargs["help"])}
            parser.add_argument(flag, dest=dest, default=None, **kwargs)


def check_options(args: argparse.Namespace, models: Mapping[str, CliModel]) -> CliModel:
    """The declaration of ``--model``, after rejecting options it does not take."""
    chosen = models[args.model]
    for dest, (flag, _) in OPTIONS.items():
        if getattr(args, dest, None) is not None and dest not in chosen.options:
            takers = [name for name, m in models.items() if dest in m.options]
            raise ValueError(
                f"{flag} applies to --model {', '.join(takers)} only, not {args.model}"
            )
    return chosen


# Issue 17: the autoregressive and flow density models.
OPTIONS["flow_kind"] = (
    "--flow-kind",
    {"choices": ("nsf", "maf", "realnvp"), "help": "flow: the transforms' family (default nsf)"},
)
OPTIONS["transforms"] = (
    "--transforms",
    {"type": positive_int, "metavar": "T", "help": "flow: number of transforms (default 3)"},
)


def _flow_kind(options: dict[str, Any]) -> dict[str, Any]:
    if "flow_kind" in options:
        options["kind"] = options.pop("flow_kind")
    return options


FIT_MODELS["ar"] = CliModel("ar", "autoregressive model (MADE)", ("hidden",))
FIT_MODELS["flow"] = CliModel(
    "flow", "normalizing flow", ("flow_kind", "transforms", "hidden"), convert=_flow_kind
)
# Issue 15: the diffusion model (its --hidden is the denoising network's).
OPTIONS["n_steps"] = (
    "--n-steps",
    {"type": positive_int, "metavar": "T", "help": "diffusion: diffusion steps (default 100)"},
)
FIT_MODELS["diffusion"] = CliModel(
    "diffusion", "denoising diffusion model (DDPM)", ("n_steps", "hidden")
)


# Issue 16: the GAN (--hidden sets the generator's widths; the critic keeps its own default).
def _gan_options(options: dict[str, Any]) -> dict[str, Any]:
    if len(options.get("n_latent", ())) > 1:
        raise ValueError("--n-latent of --model gan is one number")
    return _one_latent(options)


FIT_MODELS["gan"] = CliModel(
    "gan",
    "generative adversarial network (CTGAN-style, WGAN-GP critic)",
    ("n_latent", "hidden"),
    convert=_gan_options,
)

# Issue 21: not-MIWAE, the VAE with a self-masking model of the mask (continuous columns).
FIT_MODELS["notmiwae"] = CliModel(
    "notmiwae",
    "VAE with self-masking missing-not-at-random mask (not-MIWAE)",
    ("n_latent", "hidden"),
    convert=_one_latent,
)
