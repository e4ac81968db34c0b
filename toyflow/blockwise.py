"""Blockwise flow matching (Park et al. 2025, METHODS.md §13): one small velocity network per segment of time.

``[0, 1]`` is cut at ``0 = b_0 < b_1 < … < b_M = 1``; segment ``k`` covers ``b_k ≤ t < b_{k+1}`` (and ``t = 1``
belongs to the last one). The velocity is ``v(x, t) = v_k(x, t)`` for the segment ``k`` that holds ``t``, each
``v_k`` a :class:`~toyflow.models.VelocityMLP`. Trained with the ordinary :class:`~toyflow.flow_matching.FlowMatching`
objective, every time ``t`` of a batch is routed to its segment's network, so each network learns only its own
stretch of the flow (near the source a simple, nearly linear field; near the target a detailed one) and its
gradient comes only from those times. Sampling with any solver of :mod:`toyflow.solvers` runs segment by segment:
a step starting at ``t_i`` calls only the network of ``t_i``'s segment.

``M = 1`` is plain flow matching. At equal total parameters (:func:`hidden_for_parameters`) each of the ``M``
networks is narrower, so one function evaluation costs less: the gain Blockwise FM trades against
networks that each see only ``1/M`` of the training times.

>>> import toyflow
>>> toyflow.seed(0)
>>> v = Blockwise(segments=4, hidden=16)
>>> v.segment(torch.tensor([0.0, 0.25, 0.5, 0.99, 1.0])).tolist()
[0, 1, 2, 3, 3]
>>> tuple(v(torch.zeros(5, 2), torch.linspace(0, 1, 5)).shape)
(5, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._base import batch_time, check_int, check_points
from .models import TimeEmbedding, VelocityMLP


def segment_of(t: Tensor, boundaries: Tensor) -> Tensor:
    """The segment ``k`` with ``b_k ≤ t < b_{k+1}`` of each time, ``(n,)`` long; ``t = 1`` is in the last segment.

    Args:
        t: times ``(n,)`` in ``[0, 1]`` (a time outside, or NaN, belongs to no segment: ``ValueError``).
        boundaries: ``(M + 1,)`` increasing, from 0 to 1.
    """
    outside = ~((t >= 0) & (t <= 1))  # NaN is outside too
    if bool(outside.any()):
        raise ValueError(f"t must lie in [0, 1] (each time belongs to a segment of [0, 1]), got {t[outside][0].item()} "
                         f"among {int(outside.sum())} time(s) outside")
    inner = boundaries[1:-1].to(t)  # the M − 1 cuts
    return torch.bucketize(t.contiguous(), inner, right=True)  # a time on a cut belongs to the segment that starts there


def hidden_for_parameters(parameters: int, segments: int, dim: int = 2, depth: int = 3, frequencies: int = 4) -> int:
    """The widest hidden size such that ``segments`` networks ``VelocityMLP(dim, hidden, depth)`` hold at most
    ``parameters`` parameters together (to compare Blockwise FM at equal size)."""
    sizes = {"parameters": parameters, "segments": segments, "dim": dim, "depth": depth, "frequencies": frequencies}
    for name, value in sizes.items():
        check_int(name, value)
    inputs = dim + TimeEmbedding(frequencies).dim
    # parameters of one network: (depth − 1)·h² + (inputs + depth + dim)·h + dim
    a, b, c = depth - 1, inputs + depth + dim, dim - parameters / segments
    hidden = int((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)) if a > 0 else int(-c / b)
    if hidden < 1:
        raise ValueError(f"parameters={parameters} is too few for {segments} networks of depth {depth}")
    return hidden


class Blockwise(nn.Module):
    """A velocity field ``v(x, t)`` made of one :class:`~toyflow.models.VelocityMLP` per time segment.

    Args:
        segments: the number ``M`` of equal segments, or the cut times ``(b_0 = 0, …, b_M = 1)``.
        dim, hidden, depth, frequencies: the size of each segment's network.
    """

    def __init__(
        self, segments: int | Sequence[float] = 2, dim: int = 2, hidden: int = 128, depth: int = 3, frequencies: int = 4
    ):
        super().__init__()
        if isinstance(segments, int):
            if isinstance(segments, bool) or segments < 1:
                raise ValueError(f"segments must be a positive int or a list of cut times, got {segments!r}")
            boundaries = torch.linspace(0, 1, segments + 1)
        else:
            boundaries = torch.as_tensor(segments, dtype=torch.float32)
            ends_fine = boundaries.ndim == 1 and len(boundaries) >= 2 and boundaries[0] == 0 and boundaries[-1] == 1
            if not ends_fine or (boundaries.diff() <= 0).any():
                raise ValueError(f"segments as cut times must increase from 0 to 1, got {list(segments)}")
        check_int("dim", dim)
        self.register_buffer("boundaries", boundaries)
        self.dim = dim
        segment_count = len(boundaries) - 1
        self.nets = nn.ModuleList(VelocityMLP(dim, hidden, depth, times=1, frequencies=frequencies) for _ in range(segment_count))

    def segment(self, t: Tensor) -> Tensor:
        """The segment index of each time ``(n,)``."""
        return segment_of(t, self.boundaries)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``v_k(x, t)`` for the segment ``k`` of each time; ``x`` ``(n, dim)``, ``t`` a time in ``[0, 1]`` or ``(n,)``."""
        check_points("x", x, self.dim)
        t = batch_time(t, x)
        segment = self.segment(t)  # (n,)
        first = segment[0]
        if bool((segment == first).all()):  # a solver's step: the whole batch is at one time, one network runs
            return self.nets[int(first)](x, t)
        out = x.new_empty(x.shape)
        for k, net in enumerate(self.nets):
            chosen = segment == k
            if chosen.any():
                out[chosen] = net(x[chosen], t[chosen])
        return out
