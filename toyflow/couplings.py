"""Couplings: the rules that decide which source point goes with which target point in a batch.

A coupling takes a batch of source points and a batch of target points, both ``(B, d)``, and returns a
:class:`~toyflow.pairs.PairBatch`: the same points re-paired, and optionally a weight per pair. A pair sampler
(:class:`~toyflow.pairs.PairSampler`) draws the points and applies the rule.

- :func:`independent`: pairs as drawn (I-CFM, 1-rectified flow).
- :class:`ExactOT`: the optimal permutation for ``‖x0_i − x1_j‖²`` in the batch (OT-CFM).
- :class:`SinkhornOT`: pairs drawn from the entropic plan (SB-CFM, with ``reg = 2σ²``).
- :class:`GibbsWeighted`: independent pairs weighted by ``exp(−‖x0 − x1‖/ε)`` (W-CFM).
- :class:`ConditionalOT`: OT that keeps each noise slot with its class (C2OT), for class-conditional flows.

The OT solvers live in :mod:`toyflow.transport`, the pair batches and samplers in :mod:`toyflow.pairs`; their
names are importable from here too (``couplings.PairSampler``, ``couplings.FixedPairs`` …).

>>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
>>> ExactOT()(x0, x1).x1.tolist()
[[0.0], [1.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._base import check_int, check_number, multinomial
from .pairs import Coupling, FixedPairs, LabelledPairSampler, PairBatch, PairSampler, PairSource
from .transport import check_batches, optimal_permutation, sinkhorn_plan, squared_distances

__all__ = [
    "ConditionalOT", "Coupling", "ExactOT", "FixedPairs", "GibbsWeighted", "LabelledPairSampler", "PairBatch",
    "PairSampler", "PairSource", "SinkhornOT", "independent", "squared_distances",
]


def independent(x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
    """Pairs as they were drawn: ``(x0, x1) ~ π0 × π1``."""
    check_batches(x0, x1)
    return PairBatch(x0, x1)


@dataclass(frozen=True)
class ExactOT:
    """Minibatch optimal transport (Tong et al. 2023; Pooladian et al. 2023).

    With B source and B target points of equal weight the optimal plan for the cost
    ``‖x0_i − x1_j‖²`` is a permutation ``σ`` (Birkhoff), so the batch is re-paired as
    ``(x0_i, x1_σ(i))``: both marginals are kept exactly and no pair is duplicated
    (torchcfm instead draws B pairs from the plan with replacement). The plan comes from
    POT's network simplex (:func:`~toyflow.transport.optimal_permutation`); its cost grows like ``B³``.
    A solve that stops before optimality (``max_iter`` pivots) raises a ``RuntimeError``.

    Two ways to make it cheaper: ``block = k`` re-pairs each run of ``k`` consecutive points (i.i.d.
    draws, so a random sub-batch) on its own, ``B/k`` solves of size ``k`` (the coupling of minibatch OT
    at batch ``k``, both marginals still exact); ``PairSampler(prefetch=True)`` solves the next batch in
    a background thread while the current one trains.
    """

    max_iter: int = 1_000_000
    block: int | None = None

    def __post_init__(self):
        check_int("max_iter", self.max_iter)
        if self.block is not None:
            check_int("block", self.block)

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        check_batches(x0, x1)
        if self.block is None or self.block >= len(x0):
            return PairBatch(x0, x1[optimal_permutation(x0, x1, self.max_iter)])
        parts = [b[optimal_permutation(a, b, self.max_iter)] for a, b in zip(x0.split(self.block), x1.split(self.block))]
        return PairBatch(x0, torch.cat(parts))


@dataclass(frozen=True)
class SinkhornOT:
    """Entropic optimal transport: pairs drawn from the Sinkhorn plan.

    ``P = argmin ⟨P, C⟩ − reg·H(P)`` with ``C[i, j] = ‖x0_i − x1_j‖²`` (not normalised) and uniform marginals
    (:func:`~toyflow.transport.sinkhorn_plan`). Each ``x0_i`` keeps its place and gets a partner
    ``j ~ P[i, :] / P[i, :].sum()``, so the source marginal is exact and the target marginal holds in
    expectation. ``reg = 2σ²`` is the Schrödinger bridge with noise ``σ`` (SB-CFM); ``reg → 0`` is exact OT,
    ``reg → ∞`` independent. ``max_iter`` and ``tol`` bound the Sinkhorn iterations and their marginal error.
    """

    reg: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self):
        check_number("reg", self.reg, low=0, low_open=True, why="the entropic regularisation; use ExactOT for reg = 0")
        check_int("max_iter", self.max_iter)
        check_number("tol", self.tol, low=0, low_open=True, why="the marginal error at which Sinkhorn stops")

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The entropic plan ``P``, shape ``(B, B)``, rows summing to ``1/B``."""
        return sinkhorn_plan(x0, x1, self.reg, self.max_iter, self.tol)

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        partner = multinomial(self.plan(x0, x1), 1, replacement=False, generator=generator)[:, 0].to(x1.device)  # (B,)
        return PairBatch(x0, x1[partner])


@dataclass(frozen=True)
class GibbsWeighted:
    """Weighted CFM (W-CFM, Calvo-Ordoñez et al. 2025, arXiv 2507.22270): independent pairs, weight
    ``w ∝ exp(−‖x0 − x1‖/ε)``.

    The loss ``Σ w_i ℓ_i / Σ w_i`` is minimised by the flow of the tilted coupling ``∝ w(x0, x1)·π0(x0)·π1(x1)``:
    the entropic-OT plan for the cost ``c = ‖x0 − x1‖`` between its own marginals, found without Sinkhorn. Its
    marginals are tilted: see :meth:`marginal_tilt`. ``ε → ∞`` gives I-CFM. Weights are normalised in the batch to
    mean 1 (``B·softmax(−c/ε)``, stable for small ``ε``).

    The cost is the *unsquared* distance ``‖x0 − x1‖`` (our reading of the paper, docs/methods.md §2: ``ε`` then
    has the units of a length, scaled as ``κ√d``). Its large-batch limit is therefore minibatch *entropic* OT for
    that cost at temperature ``ε`` (where the tilt is small), not the squared-distance plan of :class:`ExactOT` or
    :class:`SinkhornOT`: both pull each source point towards near targets, but they are different couplings.
    """

    eps: float = 1.0

    def __post_init__(self):
        check_number("eps", self.eps, low=0, low_open=True, why="the Gibbs temperature; eps → inf is I-CFM")

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        check_batches(x0, x1)
        cost = (x0 - x1).norm(dim=1)  # (B,)
        weight = len(cost) * torch.softmax(-cost / self.eps, dim=0)
        return PairBatch(x0, x1, weight)

    def marginal_tilt(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        """Relative weights of the tilted marginals, estimated on samples ``x0 ~ π0``, ``x1 ~ π1``, each ``(n, d)``.

        ``τ0(x0_i) ∝ mean_j exp(−‖x0_i − x1_j‖/ε)`` (and ``τ1`` likewise), each normalised to
        mean 1: the W-CFM model's source marginal is ``τ0·π0``, its target marginal ``τ1·π1``.
        Resample ``x1`` with probabilities ``τ1/Σ τ1`` to draw what the model really learns.
        """
        check_batches(x0, x1)
        log_kernel = -torch.cdist(x0, x1) / self.eps  # (n, n)
        tilt0 = torch.softmax(torch.logsumexp(log_kernel, dim=1), dim=0) * len(x0)
        tilt1 = torch.softmax(torch.logsumexp(log_kernel, dim=0), dim=0) * len(x1)
        return tilt0, tilt1


@dataclass(frozen=True)
class ConditionalOT:
    """Condition-aware minibatch OT (C2OT, Cheng & Schwing 2025, arXiv 2503.10636): cost
    ``‖x0_i − x1_j‖² + weight·[c_i ≠ c_j]``.

    Each noise slot ``i`` carries the label ``c_i`` of the target ``x1_i`` it was drawn with, so every class
    gets unbiased noise ``x0 ~ N(0, I)``, as at test time. ``weight = inf`` is exact OT *within each class*;
    ``weight = 0`` is plain OT, which ignores labels (then class ``c`` receives the skewed noise
    ``p(x0 | c) ≠ N(0, I)`` the solver happened to send it). A finite weight is OT on the points augmented
    with ``√(weight/2)·onehot(c)``, since ``‖onehot(c_i) − onehot(c_j)‖² = 2·[c_i ≠ c_j]``.

    Simplified from the paper: discrete labels only (C2OT's continuous conditions, with the cost
    ``weight·(1 − cos(c_i, c_j))`` and a weight tuned per batch, are not implemented); its oversampling is
    :class:`~toyflow.pairs.LabelledPairSampler`'s ``oversample``.

    Args:
        weight: the price of pairing across classes, ``>= 0`` (``math.inf``: never).

    >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
    >>> ConditionalOT()(x0, x1, torch.tensor([0, 1])).x1.tolist(), ConditionalOT(0.0)(x0, x1, torch.tensor([0, 1])).x1.tolist()
    ([[1.0], [0.0]], [[0.0], [1.0]])
    """

    weight: float = math.inf

    def __post_init__(self):
        if not (isinstance(self.weight, (int, float)) and not isinstance(self.weight, bool) and self.weight == math.inf):
            check_number("weight", self.weight, low=0, why="0 is plain OT, math.inf is OT within each class")

    def __call__(self, x0: Tensor, x1: Tensor, label: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        check_batches(x0, x1)
        if not isinstance(label, Tensor) or label.shape != (len(x1),) or label.is_floating_point() or (label < 0).any():
            shape = tuple(label.shape) if isinstance(label, Tensor) else type(label).__name__
            raise ValueError(f"label must be non-negative integer class labels of shape ({len(x1)},), got {shape}")
        if math.isinf(self.weight):
            partner = torch.arange(len(x1), device=x1.device)
            for c in label.unique():
                members = (label == c).nonzero()[:, 0]
                partner[members] = members[optimal_permutation(x0[members], x1[members])]
        else:
            tag = (self.weight / 2) ** 0.5 * torch.nn.functional.one_hot(label).to(x0)  # (B, classes)
            partner = optimal_permutation(torch.cat([x0, tag], 1), torch.cat([x1, tag], 1))
        return PairBatch(x0, x1[partner], label=label[partner])
