"""Couplings: how a batch of pairs ``(x0, x1)`` is drawn.

A coupling takes a batch of source points and a batch of target points, both ``(B, d)``,
and returns a :class:`PairBatch`: the same points re-paired, and optionally a weight per
pair. A *pair sampler* (:class:`PairSampler`, :class:`FixedPairs`) draws such batches.

- :func:`independent`: pairs as drawn (I-CFM, 1-rectified flow).
- :class:`ExactOT`: the optimal permutation for ``‖x0_i − x1_j‖²`` in the batch (OT-CFM).
- :class:`SinkhornOT`: pairs drawn from the entropic plan (SB-CFM, with ``reg = 2σ²``).
- :class:`GibbsWeighted`: independent pairs weighted by ``exp(−‖x0 − x1‖/ε)`` (W-CFM).
- :class:`FixedPairs`: a fixed set of pairs, e.g. a flow's ``(z0, z1)`` for reflow.
- :class:`ConditionalOT`, :class:`LabelledPairSampler`: pairs for a class-conditional flow, OT within
  each class (C2OT) or across classes.

>>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
>>> ExactOT()(x0, x1).x1.tolist()
[[0.0], [1.0]]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import ot
import torch
from torch import Tensor

from .data import Distribution


@dataclass
class PairBatch:
    """Paired points ``x0[i] ↔ x1[i]``, shape ``(B, d)`` each; ``weight`` is ``(B,)`` with mean 1, or None;
    ``label`` ``(B,)`` is the class of each target ``x1[i]`` (conditional flows), or None."""

    x0: Tensor
    x1: Tensor
    weight: Tensor | None = None
    label: Tensor | None = None


Coupling = Callable[..., PairBatch]


class PairSource(Protocol):
    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch: ...


def _check_batches(x0: Tensor, x1: Tensor) -> None:
    if x0.ndim != 2 or x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must both have shape (B, d), got {tuple(x0.shape)} and {tuple(x1.shape)}")


def _finite_cost(x0: Tensor, x1: Tensor) -> np.ndarray:
    """The cost matrix as float64 NumPy for POT, after checking that every point is finite."""
    _check_batches(x0, x1)
    for name, x in (("x0", x0), ("x1", x1)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or inf points: optimal transport needs finite costs")
    return squared_distances(x0, x1).detach().cpu().double().numpy()


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """The cost matrix ``C[i, j] = ‖x0_i − x1_j‖²``, shape ``(B, B)``."""
    return torch.cdist(x0, x1) ** 2


def independent(x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
    """Pairs as they were drawn: ``(x0, x1) ~ π0 × π1``."""
    _check_batches(x0, x1)
    return PairBatch(x0, x1)


@dataclass(frozen=True)
class ExactOT:
    """Minibatch optimal transport (Tong et al. 2023; Pooladian et al. 2023).

    With B source and B target points of equal weight the optimal plan for the cost
    ``‖x0_i − x1_j‖²`` is a permutation ``σ`` (Birkhoff), so the batch is re-paired as
    ``(x0_i, x1_σ(i))``: both marginals are kept exactly and no pair is duplicated
    (torchcfm instead draws B pairs from the plan with replacement). The plan comes from
    POT's network simplex ``ot.emd``; its cost grows like ``B³`` (about 5 ms at B = 256 on a CPU).
    A solve that stops before optimality (``max_iter`` pivots) raises a ``RuntimeError``.

    Two ways to make it cheaper: ``block = k`` re-pairs each run of ``k`` consecutive points (i.i.d.
    draws, so a random sub-batch) on its own, ``B/k`` solves of size ``k`` (the coupling of minibatch OT
    at batch ``k``, both marginals still exact); ``PairSampler(prefetch=True)`` solves the next batch in
    a background thread while the current one trains.
    """

    max_iter: int = 1_000_000
    block: int | None = None

    def __post_init__(self):
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int (network-simplex pivots), got {self.max_iter!r}")
        if self.block is not None and (not isinstance(self.block, int) or isinstance(self.block, bool) or self.block < 1):
            raise ValueError(f"block must be a positive int (points per OT solve) or None (the whole batch), got {self.block!r}")

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        _check_batches(x0, x1)
        if self.block is not None and self.block < len(x0):
            whole = ExactOT(self.max_iter)
            parts = [whole(a, b).x1 for a, b in zip(x0.split(self.block), x1.split(self.block))]
            return PairBatch(x0, torch.cat(parts))
        cost = _finite_cost(x0, x1)
        uniform = np.full(len(cost), 1 / len(cost))
        with warnings.catch_warnings():  # POT's own warning; its status is checked below
            warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
            plan, log = ot.emd(uniform, uniform, cost, numItermax=self.max_iter, log=True)  # (B, B), 1/B per row
        if log["result_code"] != 1:  # 1 is OPTIMAL
            raise RuntimeError(
                f"exact OT stopped before the optimal plan ({log['warning']}) at B = {len(cost)}: "
                f"raise ExactOT(max_iter=...) above {self.max_iter}, use a smaller batch, or SinkhornOT"
            )
        partner = torch.as_tensor(plan.argmax(axis=1), device=x1.device)
        return PairBatch(x0, x1[partner])


@dataclass(frozen=True)
class SinkhornOT:
    """Entropic optimal transport: pairs drawn from the Sinkhorn plan.

    ``P = argmin ⟨P, C⟩ − reg·H(P)`` with ``C[i, j] = ‖x0_i − x1_j‖²`` (not normalised) and
    uniform marginals, solved by POT's Sinkhorn iterations: the plain ones (fast) while
    ``exp(−C/reg)`` stays well inside float64, the log-domain ones (stable, ~10× slower) when
    ``max C / reg > 200``. Each ``x0_i``
    keeps its place and gets a partner ``j ~ P[i, :] / P[i, :].sum()``, so the source marginal
    is exact and the target marginal holds in expectation. ``reg = 2σ²`` is the
    Schrödinger bridge with noise ``σ`` (SB-CFM); ``reg → 0`` is exact OT, ``reg → ∞`` independent.
    """

    reg: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self):
        if not self.reg > 0:
            raise ValueError(f"reg must be > 0 (the entropic regularisation; use ExactOT for reg = 0), got {self.reg}")
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int (Sinkhorn iterations), got {self.max_iter!r}")
        if not 0 < self.tol < np.inf:
            raise ValueError(f"tol must be a finite number > 0 (the marginal error at which Sinkhorn stops), got {self.tol!r}")

    def plan(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The entropic plan ``P``, shape ``(B, B)``, rows summing to ``1/B``.

        When the marginal error is still above ``tol`` after ``max_iter`` iterations it warns (the plan is
        usable, only less exact); a plan with NaN or inf entries raises a ``RuntimeError``."""
        cost = _finite_cost(x0, x1)
        uniform = np.full(len(cost), 1 / len(cost))
        method = "sinkhorn_log" if cost.max() / self.reg > 200 else "sinkhorn"
        with warnings.catch_warnings():  # POT's own warning; its status is checked below
            warnings.filterwarnings("ignore", message="Sinkhorn did not converge", category=UserWarning)
            plan, log = ot.sinkhorn(uniform, uniform, cost, self.reg, method, numItermax=self.max_iter,
                                    stopThr=self.tol, log=True)
        if not np.isfinite(plan).all() or not plan.sum() > 0:
            raise RuntimeError(f"Sinkhorn's plan overflowed at reg={self.reg} (max cost {cost.max():.3g}): increase reg")
        error = log["err"][-1] if log["err"] else np.inf
        if not error <= self.tol:
            warnings.warn(
                f"Sinkhorn did not converge in {self.max_iter} iterations at reg={self.reg} (marginal error "
                f"{float(error):.2g} > tol={self.tol}): increase max_iter or reg",
                RuntimeWarning,
                stacklevel=3,
            )
        return torch.as_tensor(plan, dtype=x0.dtype, device=x0.device)

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        plan = self.plan(x0, x1)
        draw = generator.device if generator is not None else plan.device  # the device rule: draw there, index here
        partner = torch.multinomial(plan.to(draw), 1, generator=generator)[:, 0].to(x1.device)
        return PairBatch(x0, x1[partner])


@dataclass(frozen=True)
class GibbsWeighted:
    """Weighted CFM (Calvo-Ordoñez et al. 2025): independent pairs, weight ``w ∝ exp(−‖x0 − x1‖/ε)``.

    The loss ``Σ w_i ℓ_i / Σ w_i`` is minimised by the flow of the tilted coupling
    ``∝ w(x0, x1)·π0(x0)·π1(x1)``, an entropic-OT-like coupling without Sinkhorn. Its marginals
    are tilted: see :meth:`marginal_tilt`. ``ε → ∞`` gives I-CFM. Weights are normalised in
    the batch to mean 1 (``B·softmax(−c/ε)``, stable for small ``ε``).
    """

    eps: float = 1.0

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0 (the Gibbs temperature; eps → inf is I-CFM), got {self.eps}")

    def __call__(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        _check_batches(x0, x1)
        cost = (x0 - x1).norm(dim=1)  # (B,)
        weight = len(cost) * torch.softmax(-cost / self.eps, dim=0)
        return PairBatch(x0, x1, weight)

    def marginal_tilt(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        """Relative weights of the tilted marginals, estimated on samples ``x0 ~ π0``, ``x1 ~ π1``.

        ``τ0(x0_i) ∝ mean_j exp(−‖x0_i − x1_j‖/ε)`` (and ``τ1`` likewise), each normalised to
        mean 1: the W-CFM model's source marginal is ``τ0·π0``, its target marginal ``τ1·π1``.
        Resample ``x1`` with probabilities ``τ1/Σ τ1`` to draw what the model really learns.
        """
        _check_batches(x0, x1)
        log_kernel = -torch.cdist(x0, x1) / self.eps  # (n, n)
        tilt0 = torch.softmax(torch.logsumexp(log_kernel, dim=1), dim=0) * len(x0)
        tilt1 = torch.softmax(torch.logsumexp(log_kernel, dim=0), dim=0) * len(x1)
        return tilt0, tilt1


@dataclass
class PairSampler:
    """Draws ``n`` source points and ``n`` target points and pairs them with ``coupling``.

    With ``prefetch=True`` each call also draws the points of the *next* batch and pairs them in a
    background thread, so an expensive coupling (exact OT's ``O(B³)`` solve, which POT runs without
    holding Python's lock) overlaps the training step instead of lengthening it. Every random number is
    still drawn in the caller's thread, in a fixed order, so runs stay reproducible; the coupling gets
    its own generator seeded from the caller's. A prefetched batch is used only by the next call with the
    same ``n``, ``device`` and generator object; otherwise it is dropped and the batch is solved now.
    """

    source: Distribution
    target: Distribution
    coupling: Coupling = independent
    prefetch: bool = False
    _next: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("source", "target"):
            if not callable(getattr(getattr(self, name), "sample", None)):
                raise TypeError(f"{name} must be a distribution with sample(n, generator, device), such as "
                                f"data.get('moons'), got {getattr(self, name)!r}")
        if not callable(self.coupling):
            raise TypeError(f"coupling must be a callable coupling(x0, x1, generator) -> PairBatch, got {self.coupling!r}")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        if not self.prefetch:
            x0 = self.source.sample(n, generator, device)
            x1 = self.target.sample(n, generator, device)
            return self.coupling(x0, x1, generator=generator)
        key = (n, None if device is None else torch.device(device))
        if self._next is not None and self._next[0] is generator and self._next[1] == key:
            current = self._next[2]
        else:  # nothing prefetched for this call: start its batch now
            current = self._solve_later(n, generator, device)
        self._next = (generator, key, self._solve_later(n, generator, device))  # paired while this batch trains
        return current.result()

    def _solve_later(self, n: int, generator: torch.Generator | None, device) -> Future:
        x0 = self.source.sample(n, generator, device)
        x1 = self.target.sample(n, generator, device)
        own = None
        if generator is not None:  # a generator of the coupling's own, seeded in this thread
            own = torch.Generator(generator.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            )
        return _BACKGROUND.submit(self.coupling, x0, x1, generator=own)


_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toyflow-pairs")


@dataclass
class FixedPairs:
    """A fixed coupling given by ``N`` pairs ``(z0[i], z1[i])``; ``sample`` draws ``n`` of them at random."""

    z0: Tensor
    z1: Tensor

    def __post_init__(self):
        _check_batches(self.z0, self.z1)
        if len(self.z0) == 0:
            raise ValueError("z0 and z1 must hold at least one pair, got 0")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` pairs drawn with replacement; the index is drawn on the generator's device (the device rule),
        the pairs are returned on ``device`` (default: where ``z0`` lives)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        draw = generator.device if generator is not None else self.z0.device
        index = torch.randint(len(self.z0), (n,), generator=generator, device=draw).to(self.z0.device)
        pairs = PairBatch(self.z0[index], self.z1[index])
        return pairs if device is None else PairBatch(pairs.x0.to(device), pairs.x1.to(device))


def _ot_partner(x0: Tensor, x1: Tensor) -> Tensor:
    """The optimal permutation ``σ`` for the cost ``‖x0_i − x1_j‖²``: ``x0[i] ↔ x1[σ[i]]``, shape ``(B,)``."""
    cost = squared_distances(x0, x1).detach().cpu().double().numpy()
    uniform = np.full(len(cost), 1 / len(cost))
    plan = ot.emd(uniform, uniform, cost, numItermax=1_000_000)
    return torch.as_tensor(plan.argmax(axis=1), device=x1.device)


@dataclass(frozen=True)
class ConditionalOT:
    """Condition-aware minibatch OT (C2OT, Cheng et al. 2025): cost ``‖x0_i − x1_j‖² + weight·[c_i ≠ c_j]``.

    Each noise slot ``i`` carries the label ``c_i`` of the target ``x1_i`` it was drawn with, so every class
    gets unbiased noise ``x0 ~ N(0, I)``, as at test time. ``weight = inf`` is exact OT *within each class*;
    ``weight = 0`` is plain OT, which ignores labels (then class ``c`` receives the skewed noise
    ``p(x0 | c) ≠ N(0, I)`` the solver happened to send it). A finite weight is OT on the points augmented
    with ``√(weight/2)·onehot(c)``, since ``‖onehot(c_i) − onehot(c_j)‖² = 2·[c_i ≠ c_j]``.

    >>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
    >>> ConditionalOT()(x0, x1, torch.tensor([0, 1])).x1.tolist(), ConditionalOT(0.0)(x0, x1, torch.tensor([0, 1])).x1.tolist()
    ([[1.0], [0.0]], [[0.0], [1.0]])
    """

    weight: float = math.inf

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0 (0 is plain OT, inf is OT within each class), got {self.weight}")

    def __call__(self, x0: Tensor, x1: Tensor, label: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        _check_batches(x0, x1)
        if label.shape != (len(x1),):
            raise ValueError(f"label must have shape ({len(x1)},), got {tuple(label.shape)}")
        if math.isinf(self.weight):
            partner = torch.arange(len(x1), device=x1.device)
            for c in label.unique():
                members = (label == c).nonzero()[:, 0]
                partner[members] = members[_ot_partner(x0[members], x1[members])]
        else:
            tag = (self.weight / 2) ** 0.5 * torch.nn.functional.one_hot(label).to(x0)  # (B, classes)
            partner = _ot_partner(torch.cat([x0, tag], 1), torch.cat([x1, tag], 1))
        return PairBatch(x0, x1[partner], label=label[partner])


@dataclass
class LabelledPairSampler:
    """Draws ``n`` source points and ``n`` labelled target points (``target.sample_labelled``) and pairs them
    with ``coupling``: None for independent pairs, or a :class:`ConditionalOT`. The batch carries ``label``."""

    source: Distribution
    target: Distribution
    coupling: ConditionalOT | None = None

    def __post_init__(self):
        if not hasattr(self.target, "sample_labelled"):
            raise TypeError(f"target must have labels (a sample_labelled method), got {type(self.target).__name__}")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        x0 = self.source.sample(n, generator, device)
        x1, label = self.target.sample_labelled(n, generator, device)
        if self.coupling is None:
            return PairBatch(x0, x1, label=label)
        return self.coupling(x0, x1, label, generator=generator)
