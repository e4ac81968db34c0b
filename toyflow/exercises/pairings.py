"""Checkers for the couplings: which data point each source point travels to. Minibatch optimal transport
(notebook 02), rectified flow's pairs from its own ODE (03), the monotone pairing in 1D (06) and optimal
transport within each class (13)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _base, closed_form, couplings, solvers
from ._check import compare, normal, pair_cases, uniform


def check_ot_pairing(pair: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1) -> x1 reordered`` so that ``Σ_i ‖x0_i − x1_σ(i)‖²`` is minimal over permutations ``σ``
    (minibatch optimal transport with uniform weights, where the optimal plan is a permutation)."""

    def reference(x0, x1):
        return couplings.ExactOT()(x0, x1).x1

    def by_first_coordinate(x0, x1):
        order0, order1 = x0[:, 0].argsort(), x1[:, 0].argsort()
        out = torch.empty_like(x1)
        out[order0] = x1[order1]
        return out

    cases = [(x0, x1) for x0, x1, _ in pair_cases(3, n=24)]
    return compare(pair, reference, cases, "check_ot_pairing", [
        ("x1 came back in its original order: that is the independent coupling", lambda x0, x1: x1),
        ("the pairing sorts by the first coordinate: that is optimal in 1D only; solve the 2D problem with ot.emd",
         by_first_coordinate),
    ])


def check_reflow_pairs(make_pairs: Callable[..., tuple[Tensor, Tensor]]) -> bool:
    """Check ``make_pairs(v, z0, steps) -> (z0, z1)``: ``z1`` is where ``steps`` Euler steps of ``v`` from ``t = 0``
    to ``t = 1`` take ``z0`` — the coupling the next reflow round trains on."""
    field = closed_form.GaussianToGaussian(mean=(2.0, -1.0), std=0.4).velocity

    def as_tensor(z0, steps):
        pairs = make_pairs(field, z0, steps)
        if not (isinstance(pairs, tuple) and len(pairs) == 2):
            raise TypeError(f"return the pair (z0, z1), got {type(pairs).__name__}")
        return torch.stack(pairs)

    def reference(z0, steps):
        return torch.stack([z0, solvers.integrate(field, z0, steps).x])

    def euler_from(z0, steps, grid):
        return torch.stack([z0, solvers.integrate(field, z0, grid=grid).x])

    generator = torch.Generator().manual_seed(4)
    cases = [(normal((16, 2), generator), steps) for steps in (1, 3, 8)]
    return compare(as_tensor, reference, cases, "check_reflow_pairs", [
        ("the pair is reversed: return (z0, z1), the source point first", lambda z0, steps: reference(z0, steps).flip(0)),
        ("only one step was taken: loop over all `steps` steps of size 1/steps",
         lambda z0, steps: torch.stack([z0, z0 + field(z0, _base.batch_time(0.0, z0))])),
        ("the time starts at dt instead of 0: evaluate v at t = 0, 1/steps, …, (steps − 1)/steps",
         lambda z0, steps: euler_from(z0, steps, torch.linspace(1 / steps, 1 + 1 / steps, steps + 1, dtype=z0.dtype))),
    ])


def check_monotone_pairing(pair: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1) -> x1 reordered`` for 1D points ``(n,)``: the monotone coupling, the i-th smallest ``x0``
    paired with the i-th smallest ``x1``. In 1D it is the optimal pairing for every convex cost, and the only coupling
    a flow can produce (paths on a line cannot pass each other)."""

    def in_order_of_x0(x0, x1, descending=False):
        out = torch.empty_like(x1)
        out[x0.argsort()] = x1.sort(descending=descending).values
        return out

    generator = torch.Generator().manual_seed(7)
    cases = [(normal(20, generator), uniform(20, generator) * 4 + 1) for _ in range(3)]
    return compare(pair, in_order_of_x0, cases, "check_monotone_pairing", [
        ("x1 came back in its original order: that is the independent coupling", lambda x0, x1: x1),
        ("x1 came back sorted, but x0 is not sorted: put the k-th smallest x1 where the k-th smallest x0 is",
         lambda x0, x1: x1.sort().values),
        ("the order is reversed: the smallest x0 gets the largest x1, the most expensive pairing",
         lambda x0, x1: in_order_of_x0(x0, x1, descending=True)),
    ])


def check_within_class_pairing(pair: Callable[[Tensor, Tensor, Tensor], Tensor]) -> bool:
    """Check ``pair(x0, x1, label) -> x1 reordered``: slot ``i`` carries ``label[i]``, the class of ``x1[i]``; every
    ``x0_i`` must get a datum of its own class, with ``Σ_i ‖x0_i − x1_σ(i)‖²`` minimal under that rule (C2OT with an
    infinite label weight: one OT problem per class). ``x0, x1`` are ``(n, 2)``, ``label`` is ``(n,)``."""

    def reference(x0, x1, label):
        return couplings.ConditionalOT()(x0, x1, label).x1

    def ignoring_labels(x0, x1, label):
        return couplings.ConditionalOT(weight=0.0)(x0, x1, label).x1

    generator = torch.Generator().manual_seed(6)
    cases = []
    for classes in (2, 3, 3, 4):
        label = (torch.arange(24) % classes)[_base.randperm(24, generator)]
        centres = 3.0 * normal((classes, 2), generator)
        cases.append((normal((24, 2), generator), centres[label] + 0.5 * normal((24, 2), generator), label))
    return compare(pair, reference, cases, "check_within_class_pairing", [
        ("x1 came back in its original order: that is the independent coupling (within each class, pairs are free to move)",
         lambda x0, x1, label: x1),
        ("the pairs ignore the labels: that is plain OT over the whole batch; solve one OT problem per class", ignoring_labels),
    ])
