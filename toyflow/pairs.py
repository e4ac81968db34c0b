"""Pair batches and the samplers that draw them: what a flow-matching objective trains on.

A :class:`PairBatch` holds paired points ``x0[i] ↔ x1[i]``, optionally a weight and a class label per pair.
A *pair sampler* has ``sample(n, generator=None, device=None) -> PairBatch``:

- :class:`PairSampler`: ``n`` source and ``n`` target draws, paired by a coupling (a rule of
  :mod:`toyflow.couplings`, or None: as drawn), optionally paired in a background thread (``prefetch``);
- :class:`FixedPairs`: ``n`` pairs drawn from a fixed set, e.g. a flow's ``(z0, z1)`` for reflow;
- :class:`LabelledPairSampler`: labelled targets, for a class-conditional flow.

A coupling is any callable ``coupling(x0, x1, generator=None) -> PairBatch`` (a labelled one also takes
``label``). Every random number is drawn by the device rule of :mod:`toyflow._base`.

>>> import toyflow
>>> pairs = PairSampler(toyflow.data.get("gaussian"), toyflow.data.get("moons"))
>>> tuple(pairs.sample(4, torch.Generator().manual_seed(0)).x1.shape)
(4, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ._base import check_callable, check_int, check_points, randint, randperm, seed_generator
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
    """Anything an objective draws its pairs from: :class:`PairSampler`, :class:`FixedPairs`, :class:`LabelledPairSampler`."""

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` pairs ``x0[i] ↔ x1[i]``, each ``(n, d)``, on ``device``."""


def _check_distribution(value: object, name: str) -> None:
    if not callable(getattr(value, "sample", None)):
        raise TypeError(f"{name} must be a distribution with sample(n, generator, device), such as "
                        f"data.get('moons'), got {value!r}")


def _check_coupling(value: object) -> None:
    if value is not None:
        check_callable("coupling", value, "a callable coupling(x0, x1, generator) -> PairBatch, or None (pairs as drawn)")


@dataclass
class PairSampler:
    """Draws ``n`` source points and ``n`` target points and pairs them with ``coupling`` (None: as drawn).

    With ``prefetch=True`` each call also draws the points of the *next* batch and pairs them in a
    background thread, so an expensive coupling (exact OT's ``O(B³)`` solve, which POT runs without
    holding Python's lock) overlaps the training step instead of lengthening it. Every random number is
    still drawn in the caller's thread, in a fixed order, so runs stay reproducible; the coupling gets
    its own generator seeded from the caller's (``_base.seed_generator``). A prefetched batch is used only
    by the next call with the same ``n``, ``device`` and generator object; otherwise it is dropped and the
    batch is solved now.
    """

    source: Distribution
    target: Distribution
    coupling: Coupling | None = None
    prefetch: bool = False
    _next: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_distribution(self.source, "source")
        _check_distribution(self.target, "target")
        _check_coupling(self.coupling)
        if not isinstance(self.prefetch, bool):
            raise TypeError(f"prefetch must be True or False, got {self.prefetch!r}")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` source and ``n`` target points, paired by the coupling (with ``prefetch``, the batch solved while the
        previous one trained): a :class:`PairBatch` on ``device``."""
        check_int("n", n)
        if not self.prefetch:
            return self._pair(*self._draw(n, generator, device), generator=generator)
        key = (n, None if device is None else torch.device(device))
        if self._next is not None and self._next[0] is generator and self._next[1] == key:
            current = self._next[2]
        else:  # nothing prefetched for this call: start its batch now
            current = self._solve_later(n, generator, device)
        self._next = (generator, key, self._solve_later(n, generator, device))  # paired while this batch trains
        return current.result()

    def _draw(self, n: int, generator: torch.Generator | None, device) -> tuple[Tensor, Tensor]:
        return self.source.sample(n, generator, device), self.target.sample(n, generator, device)

    def _pair(self, x0: Tensor, x1: Tensor, generator: torch.Generator | None) -> PairBatch:
        return PairBatch(x0, x1) if self.coupling is None else self.coupling(x0, x1, generator=generator)

    def _solve_later(self, n: int, generator: torch.Generator | None, device) -> Future:
        x0, x1 = self._draw(n, generator, device)
        return _BACKGROUND.submit(self._pair, x0, x1, seed_generator(generator))


_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toyflow-pairs")


@dataclass
class FixedPairs:
    """A fixed coupling given by ``N`` pairs ``(z0[i], z1[i])``, each ``(N, d)``; ``sample`` draws ``n`` of them."""

    z0: Tensor
    z1: Tensor

    def __post_init__(self):
        check_points("z0", self.z0)
        check_points("z1", self.z1)
        if self.z0.shape != self.z1.shape:
            raise ValueError(f"z0 and z1 must both have shape (N, d), got {tuple(self.z0.shape)} and {tuple(self.z1.shape)}")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``n`` pairs drawn with replacement; the index is drawn by the device rule, the pairs are returned on
        ``device`` (default: where ``z0`` lives)."""
        check_int("n", n)
        index = randint(len(self.z0), n, generator, device=self.z0.device)  # (n,)
        pairs = PairBatch(self.z0[index], self.z1[index])
        return pairs if device is None else PairBatch(pairs.x0.to(device), pairs.x1.to(device))


@dataclass
class LabelledPairSampler:
    """Draws ``n`` source points and ``n`` labelled target points (``target.sample_labelled``) and pairs them
    with ``coupling``: None for independent pairs, or a :class:`~toyflow.couplings.ConditionalOT`. The batch
    carries ``label``.

    ``oversample = k`` is C2OT's oversampling (Cheng & Schwing 2025): it draws ``k·n`` pairs, couples them all
    and keeps a random ``n`` of them, so OT within each class sees ``k`` times more points per class (a class
    holding few points of a batch is otherwise paired almost at random). The paper spends the other pairs on
    the next training steps; here they are dropped, which costs ``k·n`` draws and a ``k·n`` OT solve per step.
    """

    source: Distribution
    target: Distribution
    coupling: Coupling | None = None
    oversample: int = 1

    def __post_init__(self):
        _check_distribution(self.source, "source")
        if not callable(getattr(self.target, "sample_labelled", None)):
            raise TypeError(f"target must have labels (a sample_labelled method), got {type(self.target).__name__}")
        _check_coupling(self.coupling)
        check_int("oversample", self.oversample)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> PairBatch:
        """``oversample·n`` source points and labelled target points, paired by the coupling (which sees the labels),
        ``n`` of the pairs kept: a :class:`PairBatch` with the target labels."""
        check_int("n", n)
        drawn = n * self.oversample
        x0 = self.source.sample(drawn, generator, device)
        x1, label = self.target.sample_labelled(drawn, generator, device)
        pairs = PairBatch(x0, x1, label=label) if self.coupling is None else self.coupling(x0, x1, label, generator=generator)
        if self.oversample == 1:
            return pairs
        keep = randperm(drawn, generator, device=pairs.x0.device)[:n]  # (n,)
        weight = None if pairs.weight is None else pairs.weight[keep]
        return PairBatch(pairs.x0[keep], pairs.x1[keep], weight, None if pairs.label is None else pairs.label[keep])
