"""Normalizing flows with exact likelihood (docs/methods.md §15).

- :mod:`~toyflow.nf.base`: the :class:`Flow` API shared by all (``forward``, ``inverse``, ``log_prob``,
  ``sample``, ``denoise``) and the :class:`MaximumLikelihood` objective that ``train.fit`` minimises.
- :mod:`~toyflow.nf.coupling`: RealNVP, affine coupling layers with alternating masks.
- :mod:`~toyflow.nf.autoregressive`: MAF, masked autoregressive layers (MADE).
- :mod:`~toyflow.nf.spline`: neural spline flow, rational-quadratic spline coupling layers.
- :mod:`~toyflow.nf.tarflow`: TARFlow, causal-transformer blocks, inverted sequentially, by Jacobi
  or by Gauss–Seidel–Jacobi iteration; STARFlow's deep–shallow arrangement.
- :mod:`~toyflow.nf.denoise`: STARFlow's learned denoising step and its objective.
- :mod:`~toyflow.nf.curves`: the toy sequences TARFlow learns: short noisy 2D curves, and random walks.
"""

from .autoregressive import MADE, MAF, MaskedAutoregressive
from .base import Flow, MaximumLikelihood, standard_normal_log_prob
from .coupling import AffineCoupling, RealNVP
from .curves import Curves, Wander
from .denoise import Denoiser, Denoising
from .spline import SplineCoupling, SplineFlow, rational_quadratic_spline
from .tarflow import AutoregressiveBlock, CausalTransformer, Decoding, TARFlow, deep_shallow

__all__ = [
    "MADE", "MAF", "AffineCoupling", "AutoregressiveBlock", "CausalTransformer", "Curves", "Decoding", "Denoiser",
    "Denoising", "Flow", "MaskedAutoregressive", "MaximumLikelihood", "RealNVP", "SplineCoupling", "SplineFlow", "TARFlow",
    "Wander", "deep_shallow", "rational_quadratic_spline", "standard_normal_log_prob",
]
