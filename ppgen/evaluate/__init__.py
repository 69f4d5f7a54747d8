"""Judging fitted models: bounds on the likelihood, MCMC diagnostics, predictive accuracy.

This layer never trains: every function takes a :class:`ppgen.Fit` and data, or (sample quality)
a real and a synthetic table.
"""

from ppgen.evaluate.ais import AISResult, BDMCResult, ais, bdmc
from ppgen.evaluate.bounds import Estimate, elbo, iwae
from ppgen.evaluate.diagnostics import ConvergenceWarning, diagnostics, loo, waic
from ppgen.evaluate.factors import (
    factor_criteria,
    factor_report,
    factor_scores,
    fit_indices,
    parallel_analysis,
    velicer_map,
    very_simple_structure,
)
from ppgen.evaluate.nested import nested_rhat
from ppgen.evaluate.synthetic import (
    C2STResult,
    DCRResult,
    MMDResult,
    PRDCResult,
    QualityResult,
    c2st,
    dcr,
    mmd,
    prdc,
    quality,
)

__all__ = [
    "AISResult",
    "BDMCResult",
    "ConvergenceWarning",
    "Estimate",
    "ais",
    "bdmc",
    "diagnostics",
    "elbo",
    "iwae",
    "loo",
    "waic",
    # factor analysis (ppgen.evaluate.factors)
    "factor_criteria",
    "factor_report",
    "factor_scores",
    "fit_indices",
    "parallel_analysis",
    "velicer_map",
    "very_simple_structure",
    "nested_rhat",
]
# Sample quality (ppgen.evaluate.synthetic): two tables in, no fit needed.
__all__ += [
    "C2STResult",
    "DCRResult",
    "MMDResult",
    "PRDCResult",
    "QualityResult",
    "c2st",
    "dcr",
    "mmd",
    "prdc",
    "quality",
]
# Decoder (implicit) models: AIS with a noise model (ppgen.evaluate.decoder_ais).
from ppgen.evaluate.decoder_ais import (  # noqa: E402
    DecoderAISResult,
    DecoderBDMCResult,
    SigmaSelection,
    decoder_ais,
    decoder_bdmc,
)

__all__ += [
    "DecoderAISResult",
    "DecoderBDMCResult",
    "SigmaSelection",
    "decoder_ais",
    "decoder_bdmc",
]
