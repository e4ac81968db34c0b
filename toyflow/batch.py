"""The objective contract: how every objective draws its batch and reduces its loss.

An objective is a dataclass called as ``objective(model, generator=None) -> loss`` (a 0-d tensor) that
:func:`toyflow.train.fit` minimises. Every one of them

1. draws its batch with :func:`draw_batch`: points or pairs, times and the stochastic path's noise ``z``,
   drawn by the device rule (:mod:`toyflow._base`) and returned on the model's device in the data's dtype;
2. reduces its loss with :func:`mean_loss`: a loss per point (averaged over dimensions), then the batch
   mean weighted by the pair weights when the batch carries them;
3. accepts ``generator=None`` (torch's global generator) and checks its fields in ``__post_init__``.

``tests/test_contract.py`` finds every objective in the library and holds it to these rules.

>>> import toyflow
>>> pairs = toyflow.couplings.PairSampler(toyflow.data.get("gaussian"), toyflow.data.get("moons"))
>>> batch = draw_batch(pairs, 8, toyflow.models.VelocityMLP(), torch.Generator().manual_seed(0), time=toyflow.paths.UniformTime())
>>> tuple(batch.x0.shape), tuple(batch.t.shape), batch.z
((8, 2), (8,), None)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._base import check_int, draw_device, model_device, randn
from .couplings import PairSource
from .data import Distribution
from .paths import Interpolant


@dataclass
class Batch:
    """One training batch, every tensor on the model's device in the data's dtype.

    ``x1`` ``(B, d)`` are the target (data) points; ``x0`` ``(B, d)`` their source partners (None when the
    objective draws data alone); ``t`` ``(B,)`` or a tuple of such (two-time objectives), or None; ``z``
    ``(B, d)`` the noise of a stochastic path, or None; ``weight`` ``(B,)`` pair weights (mean 1), or None;
    ``label`` ``(B,)`` the class of each target, or None.
    """

    x0: Tensor | None
    x1: Tensor
    t: Tensor | tuple[Tensor, ...] | None = None
    z: Tensor | None = None
    weight: Tensor | None = None
    label: Tensor | None = None


def check_pair_source(pairs: object, name: str = "pairs") -> None:
    """Raise a ``TypeError`` unless ``pairs`` draws pair batches (a distribution draws points, not pairs)."""
    if isinstance(pairs, Distribution) or not callable(getattr(pairs, "sample", None)):
        raise TypeError(
            f"{name} must be a pair sampler with sample(n, generator, device) -> PairBatch, such as "
            f"couplings.PairSampler(source, target), got {type(pairs).__name__}"
        )


def check_distribution(data: object, name: str = "data") -> None:
    """Raise a ``TypeError`` unless ``data`` draws points with ``sample(n, generator, device)``."""
    if not callable(getattr(data, "sample", None)):
        raise TypeError(f"{name} must be a distribution with sample(n, generator, device) such as data.get('moons'), "
                        f"got {type(data).__name__}")


def draw_batch(
    source: PairSource | Distribution,
    n: int,
    model: nn.Module | Callable,
    generator: torch.Generator | None = None,
    time: Callable | None = None,
    path: Interpolant | None = None,
) -> Batch:
    """A batch of ``n`` pairs (``source`` a pair sampler) or ``n`` data points (``source`` a distribution: ``x0`` is
    None), with times from ``time`` and, on a stochastic ``path``, noise ``z``; drawn in that order by the device
    rule and put on ``model``'s device in the dtype of the drawn points."""
    check_int("batch_size", n)
    device = model_device(model)
    if _draws_points(source):
        x1 = source.sample(n, generator, device)
        x0, weight, label = None, None, None
    else:
        pairs = source.sample(n, generator, device)
        x0, x1, weight, label = pairs.x0, pairs.x1, pairs.weight, pairs.label
    t = None
    if time is not None:
        drawn = time(n, generator=generator, device=draw_device(generator))
        t = tuple(s.to(x1) for s in drawn) if isinstance(drawn, tuple) else drawn.to(x1)
    z = randn(x1.shape, generator, device=x1.device, dtype=x1.dtype) if path is not None and path.is_stochastic else None
    weight = None if weight is None else weight.to(x1)
    return Batch(x0, x1, t, z, weight, label)


def _draws_points(source: object) -> bool:
    """A distribution (or anything marked ``draws_points = True``) draws points; the rest draw pairs."""
    return isinstance(source, Distribution) or getattr(source, "draws_points", False)


def mean_loss(per_point: Tensor, weight: Tensor | None = None) -> Tensor:
    """The batch loss: ``per_point`` ``(B, d)`` is first averaged over dimensions, ``(B,)`` is used as is;
    then the mean over the batch, ``mean_i w_i·ℓ_i`` with pair weights ``w`` ``(B,)`` (mean 1), else ``mean_i ℓ_i``."""
    if per_point.ndim == 2:
        per_point = per_point.mean(1)
    if per_point.ndim != 1:
        raise ValueError(f"per_point must have shape (B,) or (B, d), got {tuple(per_point.shape)}")
    return per_point.mean() if weight is None else (weight * per_point).mean()
