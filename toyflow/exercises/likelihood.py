"""Checkers for the flows with an exact likelihood: the log-density of one affine coupling layer (notebook 09)
and TARFlow's Jacobi pass, which samples every token at once (10)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..nf.base import affine_forward, standard_normal_log_prob
from ..nf.tarflow import AutoregressiveBlock
from ._check import Case, compare, normal, seeded


def _coupling_cases(seed: int = 9, count: int = 4) -> list[Case]:
    """``(x, mask, conditioner)`` in float64; ``conditioner(kept) -> (shift, log_scale)`` is a small random network whose
    outputs are non-zero on *every* coordinate and depend on every coordinate it reads, so each common mistake
    (masking, the log-determinant's sign or extent, the Gaussian's constant) gives its own wrong answer."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for k in range(count):
        w_in = normal((2, 8), generator)
        w_out = 0.5 * normal((8, 4), generator)
        bias = 0.3 * normal(4, generator)

        def conditioner(kept: Tensor, w_in=w_in, w_out=w_out, bias=bias) -> tuple[Tensor, Tensor]:
            shift, log_scale = (torch.tanh(kept @ w_in) @ w_out + bias).chunk(2, dim=1)  # (n, 2) each
            return shift, log_scale

        mask = torch.tensor([1.0, 0.0] if k % 2 == 0 else [0.0, 1.0], dtype=torch.float64)
        cases.append((1.5 * normal((16, 2), generator), mask, conditioner))
    return cases


def _coupling_log_prob(x: Tensor, mask: Tensor, conditioner: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor:
    """``log p(x) = log N(z; 0, I) − Σ (1 − m)·α``, ``z = m·x + (1 − m)·(x − μ)·e^{−α}``, ``μ, α = conditioner(m·x)``."""
    shift, log_scale = conditioner(x * mask)
    moved = 1 - mask
    z, log_det = affine_forward(x, shift * moved, log_scale * moved)  # the kept coordinates: shift 0, scale 1
    return standard_normal_log_prob(z) + log_det


def check_coupling_log_prob(log_prob: Callable[..., Tensor]) -> bool:
    """Check ``log_prob(x, mask, conditioner)``: the exact log-density ``(n,)`` of one affine coupling layer on a
    standard normal latent, ``mask`` ``(d,)`` holding 1 on the kept coordinates."""

    def parts(x, m, conditioner, reads=None):
        shift, log_scale = conditioner(x * m if reads is None else reads)
        moved = 1 - m
        return m * x + moved * (x - shift) * torch.exp(-log_scale), moved * log_scale, log_scale

    def no_log_det(x, m, c):
        z, _, _ = parts(x, m, c)
        return standard_normal_log_prob(z)

    def plus_log_det(x, m, c):
        z, moved_alpha, _ = parts(x, m, c)
        return standard_normal_log_prob(z) + moved_alpha.sum(1)

    def every_alpha(x, m, c):
        z, _, alpha = parts(x, m, c)
        return standard_normal_log_prob(z) - alpha.sum(1)

    def unmasked_input(x, m, c):
        z, moved_alpha, _ = parts(x, m, c, reads=x)
        return standard_normal_log_prob(z) - moved_alpha.sum(1)

    def no_constant(x, m, c):
        z, moved_alpha, _ = parts(x, m, c)
        return -0.5 * (z**2).sum(1) - moved_alpha.sum(1)

    def inverse_direction(x, m, c):
        shift, log_scale = c(x * m)
        z = m * x + (1 - m) * (x * torch.exp(log_scale) + shift)
        return standard_normal_log_prob(z) - ((1 - m) * log_scale).sum(1)

    return compare(log_prob, _coupling_log_prob, _coupling_cases(), "check_coupling_log_prob", [
        ("the log-determinant is missing: log p(x) = log N(z; 0, I) + log|det ∂z/∂x|, here −Σ(1 − m)·α",
         no_log_det),
        ("the log-determinant has the wrong sign: z = (x − μ)·e^{−α} shrinks space by e^{−α}, "
         "so log|det ∂z/∂x| = −Σ(1 − m)·α", plus_log_det),
        ("α was summed over every coordinate: the kept ones (mask 1) are not moved and add nothing, "
         "so sum (1 − m)·α", every_alpha),
        ("the conditioner read the coordinates it moves: give it x·mask (the kept coordinates only), "
         "or the Jacobian is not triangular", unmasked_input),
        ("the Gaussian's normalising constant is missing: log N(z; 0, I) = −‖z‖²/2 − (d/2)·log 2π", no_constant),
        ("this is the sampling direction x·e^{α} + μ: the density needs the data-to-latent map "
         "z = (x − μ)·e^{−α}", inverse_direction),
    ])


def _jacobi_cases() -> list[Case]:
    """``(params, z, x)``: a small TARFlow block's ``(shift, log_scale)`` network (forwards or backwards over the
    tokens, its weights jittered so every output matters), latents ``z`` and a current iterate ``x``, ``(4, 5, 2)``."""
    generator = torch.Generator().manual_seed(8)
    cases = []
    for k, reverse in enumerate((False, True, False)):
        with seeded(k):
            block = AutoregressiveBlock(tokens=5, channels=2, width=8, layers=1, heads=2, reverse=reverse).double()
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.3 * normal(p.shape, generator))
        z = normal((4, 5, 2), generator)
        cases.append((block._params, z, z + 0.5 * normal((4, 5, 2), generator)))
    return cases


def check_jacobi_step(step: Callable[..., Tensor]) -> bool:
    """Check ``step(params, z, x)``, one Jacobi pass ``x_new = z·exp(α(x)) + μ(x)``, ``μ, α = params(x)``, all tokens at once."""

    def reference(params, z, x):
        shift, log_scale = params(x)
        return z * torch.exp(log_scale) + shift

    def forward_direction(params, z, x):
        shift, log_scale = params(x)
        return (z - shift) * torch.exp(-log_scale)

    def from_z(params, z, x):
        shift, log_scale = params(z)
        return z * torch.exp(log_scale) + shift

    def scale_not_exponentiated(params, z, x):
        shift, log_scale = params(x)
        return z * log_scale + shift

    return compare(step, reference, _jacobi_cases(), "check_jacobi_step", [
        ("this is the forward (density) direction (x − μ)·e^{−α}: sampling inverts it, x = z·e^{α} + μ", forward_direction),
        ("μ and α were computed from z: they come from the current iterate x", from_z),
        ("α is a log-scale: multiply by exp(α), not by α", scale_not_exponentiated),
    ])
