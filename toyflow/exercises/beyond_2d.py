"""Checkers for flows beyond the plane: sampling a flow trained in an autoencoder's latent space (notebook 15)
and the nearest-neighbour test that tells new 8×8 digits from copies of the training set (16)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import solvers
from ._check import Case, as_float64, compare, gaussian_field, normal, seeded


def _latent_cases() -> list[Case]:
    """``(velocity, decoder, z0 (16, 2), steps)``: a closed-form latent field and a random linear decoder to 6D."""
    generator = torch.Generator().manual_seed(15)
    cases = []
    for steps in (1, 3, 8):
        with seeded(steps):
            decoder = torch.nn.Linear(2, 6).double()
        with torch.no_grad():
            decoder.weight.copy_(normal((6, 2), generator))
        cases.append((gaussian_field(generator), decoder, normal((16, 2), generator), steps))
    return cases


def check_latent_sample(latent_sample: Callable[..., Tensor]) -> bool:
    """Check ``latent_sample(velocity, decoder, z0, steps)``: Euler steps of the latent flow from ``z0``, then decode."""

    def reference(v, decoder, z0, steps):
        return decoder(solvers.integrate(v, z0, steps).x)

    return compare(latent_sample, reference, _latent_cases(), "check_latent_sample", [
        ("only one step was taken: integrate the whole grid of `steps` steps",
         lambda v, d, z0, steps: d(solvers.integrate(v, z0, 1).x)),
        ("the source point itself was decoded: integrate the latent flow first", lambda v, d, z0, steps: d(z0)),
    ])


def nearest_training_distance(x: Tensor, train: Tensor) -> Tensor:
    """``min_j ‖x_i − train_j‖``, the Euclidean distance from each point of ``x`` ``(n, d)`` to its nearest point of
    ``train`` ``(m, d)``: shape ``(n,)``. Far below a held-out sample's distance means copies of the training data."""
    return torch.cdist(x, train).min(1).values


def check_nearest_training(nearest: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``nearest(x, train) -> (n,)``: for each row of ``x`` ``(n, d)``, the Euclidean distance to the nearest row
    of ``train`` ``(m, d)`` (the memorisation test of notebook 16)."""
    generator = torch.Generator().manual_seed(16)
    cases = []
    for n, m in ((12, 40), (7, 25), (20, 30)):
        train = normal((m, 64), generator)
        x = normal((n, 64), generator)
        x[0] = train[3]  # an exact copy: distance 0
        cases.append((x, train))
    x, train = cases[0]
    try:
        first = nearest(x, train)
    except Exception:  # not written yet or a bug: compare reports it
        first = None
    if isinstance(first, Tensor) and first.shape == (len(train),):
        print(f"check_nearest_training: wrong on case 1: it looks like there is one distance per training point "
              f"(shape ({len(train)},)): take the minimum over the training points, one distance per row of x "
              f"(shape ({len(x)},)).")
        return False
    return compare(as_float64(nearest), nearest_training_distance, cases, "check_nearest_training", [
        ("the distances are squared: take the square root of Σ (x − y)²",
         lambda x, train: torch.cdist(x, train).min(1).values ** 2),
        ("the distance is averaged over all training points: take the nearest one (the minimum)",
         lambda x, train: torch.cdist(x, train).mean(1)),
        ("the squared differences are averaged over the coordinates: sum them (‖·‖ is the Euclidean norm)",
         lambda x, train: torch.cdist(x, train).min(1).values / x.shape[1] ** 0.5),
        ("the distance is the sum of absolute differences (L1): use the Euclidean norm, √Σ (x − y)²",
         lambda x, train: torch.cdist(x, train, p=1).min(1).values),
        ("it returns which training point is nearest (its index): return the distance to it",
         lambda x, train: torch.cdist(x, train).min(1).indices.to(x.dtype)),
    ], atol=1e-2)  # loose enough for float32 (cdist rounds a zero distance to about 1e-3), far below every mistake
