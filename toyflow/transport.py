"""Optimal transport between two batches of points: the solvers behind :mod:`toyflow.couplings`.

Both batches ``x0``, ``x1`` are ``(B, d)`` with uniform weights ``1/B``; the cost is
``C[i, j] = ‖x0_i − x1_j‖²`` (:func:`squared_distances`).

- :func:`optimal_permutation`: the exact plan, ``min_P ⟨P, C⟩`` over plans with both marginals uniform.
  With equal batches it is a permutation ``σ`` (Birkhoff), returned as ``x0[i] ↔ x1[σ[i]]``.
- :func:`sinkhorn_plan`: the entropic plan ``min_P ⟨P, C⟩ − reg·H(P)``, a dense ``(B, B)`` matrix.

Both call POT on the CPU in float64 and check what POT reports (a solve cut short raises or warns, with what
to change), so a coupling never trains on a wrong plan in silence.

>>> x0, x1 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [0.0]])
>>> optimal_permutation(x0, x1).tolist()
[1, 0]
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import torch
from torch import Tensor

from ._base import check_int, check_number, check_points


def check_batches(x0: Tensor, x1: Tensor) -> None:
    """Raise unless ``x0`` and ``x1`` are floating batches of the same shape ``(B, d)``."""
    check_points("x0", x0)
    check_points("x1", x1)
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must both have shape (B, d), got {tuple(x0.shape)} and {tuple(x1.shape)}")


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """The cost matrix ``C[i, j] = ‖x0_i − x1_j‖²``, shape ``(B, B)``."""
    return torch.cdist(x0, x1) ** 2


def _cost(x0: Tensor, x1: Tensor) -> np.ndarray:
    """The cost matrix as float64 NumPy for POT, after checking the batches and that every point is finite."""
    check_batches(x0, x1)
    for name, x in (("x0", x0), ("x1", x1)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or inf points: optimal transport needs finite costs")
    return squared_distances(x0, x1).detach().cpu().double().numpy()


def optimal_permutation(x0: Tensor, x1: Tensor, max_iter: int = 1_000_000) -> Tensor:
    """The exact OT pairing ``σ`` (``(B,)``, int64, on ``x1``'s device) for the cost ``‖x0_i − x1_j‖²``.

    POT's network simplex (``ot.emd``), ``O(B³)``. A solve that stops before the optimum (``max_iter`` pivots)
    raises a ``RuntimeError``: its "plan" would not even be a permutation.
    """
    check_int("max_iter", max_iter)
    cost = _cost(x0, x1)
    uniform = np.full(len(cost), 1 / len(cost))
    with warnings.catch_warnings():  # POT's own warning; its status is checked below
        warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
        plan, log = ot.emd(uniform, uniform, cost, numItermax=max_iter, log=True)  # (B, B), 1/B per row
    if log["result_code"] != 1:  # 1 is OPTIMAL
        raise RuntimeError(
            f"exact OT stopped before the optimal plan ({log['warning']}) at B = {len(cost)}: "
            f"raise ExactOT(max_iter=...) above {max_iter}, use a smaller batch, or SinkhornOT"
        )
    return torch.as_tensor(plan.argmax(axis=1), device=x1.device)


def sinkhorn_plan(x0: Tensor, x1: Tensor, reg: float, max_iter: int = 1000, tol: float = 1e-6) -> Tensor:
    """The entropic plan ``P`` (``(B, B)``, rows summing to ``1/B``, in ``x0``'s dtype and device).

    ``P = argmin ⟨P, C⟩ − reg·H(P)`` with uniform marginals, by POT's Sinkhorn iterations: the plain ones while
    ``exp(−C/reg)`` stays well inside float64, the log-domain ones (stable, slower) when ``max C / reg > 200``.
    When the marginal error is still above ``tol`` after ``max_iter`` iterations it warns (the plan is usable,
    only less exact); a plan with NaN or inf entries raises a ``RuntimeError``.
    """
    check_number("reg", reg, low=0, low_open=True, why="the entropic regularisation; use ExactOT for reg = 0")
    check_int("max_iter", max_iter)
    check_number("tol", tol, low=0, low_open=True, why="the marginal error at which Sinkhorn stops")
    cost = _cost(x0, x1)
    uniform = np.full(len(cost), 1 / len(cost))
    method = "sinkhorn_log" if cost.max() / reg > 200 else "sinkhorn"
    with warnings.catch_warnings():  # POT's own warning; its status is checked below
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge", category=UserWarning)
        plan, log = ot.sinkhorn(uniform, uniform, cost, reg, method, numItermax=max_iter, stopThr=tol, log=True)
    if not np.isfinite(plan).all() or not plan.sum() > 0:
        raise RuntimeError(f"Sinkhorn's plan overflowed at reg={reg} (max cost {cost.max():.3g}): increase reg")
    error = log["err"][-1] if log["err"] else np.inf
    if not error <= tol:
        warnings.warn(
            f"Sinkhorn did not converge in {max_iter} iterations at reg={reg} (marginal error "
            f"{float(error):.2g} > tol={tol}): increase max_iter or reg",
            RuntimeWarning,
            stacklevel=4,
        )
    return torch.as_tensor(plan, dtype=x0.dtype, device=x0.device)
