"""Checkers for steering a trained flow towards what we want: classifier-free guidance and the one-step endpoint
estimate a guide judges (notebook 13); the group-relative advantage and PPO's clipped surrogate of reward
fine-tuning (14)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import _base, finetune
from ._check import compare


def check_cfg(combine: Callable[..., Tensor]) -> bool:
    """Check ``combine(v_cond, v_uncond, w)``, classifier-free guidance ``v_∅ + w·(v_c − v_∅)``, all ``(n, 2)``."""

    def reference(v_c, v_null, w):
        return v_null + w * (v_c - v_null)

    generator = torch.Generator().manual_seed(0)
    cases = [(_base.randn((16, 2), generator), _base.randn((16, 2), generator), 0.5 + 3 * _base.rand((), generator).item())
             for _ in range(4)]
    return compare(combine, reference, cases, "check_cfg", [
        ("the roles are swapped: start from the unconditional v_∅ and add w·(v_c − v_∅)", lambda c, u, w: c + w * (u - c)),
        ("the difference is missing: guidance scales (v_c − v_∅), not v_c", lambda c, u, w: u + w * c),
        ("only the conditional field is scaled: w·v_c forgets v_∅", lambda c, u, w: w * c),
    ])


def check_endpoint_estimate(estimate: Callable[..., Tensor]) -> bool:
    """Check ``estimate(x, v, t)``, the one-step endpoint ``x̂1 = x + (1 − t)·v``; ``x``, ``v`` ``(n, 2)``, ``t`` ``(n,)``."""
    generator = torch.Generator().manual_seed(2)
    cases = [(_base.randn((16, 2), generator), _base.randn((16, 2), generator), _base.rand(16, generator))
             for _ in range(4)]
    return compare(estimate, lambda x, v, t: x + (1 - t[:, None]) * v, cases, "check_endpoint_estimate", [
        ("the step uses t: the time left until the data is 1 − t", lambda x, v, t: x + t[:, None] * v),
        ("the step forgets the time left: multiply v by (1 − t)", lambda x, v, t: x + v),
    ])


def check_group_advantages(advantage: Callable[..., Tensor]) -> bool:
    """Check ``advantage(reward, groups)``: ``(R − mean R)/std R`` within each of ``groups`` equal groups, ``(n,)``."""
    generator = torch.Generator().manual_seed(3)
    cases = [(_base.randn(24, generator) * 3 + 1, groups) for groups in (1, 2, 3, 4)]

    def whole_batch(reward, groups):
        return (reward - reward.mean()) / (reward.std() + 1e-8)

    return compare(advantage, finetune.advantages, cases, "check_group_advantages", [
        ("the scale is missing: divide by the group's standard deviation",
         lambda r, g: (r.view(g, -1) - r.view(g, -1).mean(1, keepdim=True)).view(-1)),
        ("the mean and std are over the whole batch: compute them within each group (reward.view(groups, -1))", whole_batch),
    ], atol=1e-4)


def _ratio_cases(seed: int, n: int) -> list[tuple[Tensor, Tensor, float]]:
    """``(ratio (n,) in [0.25, 1.75), advantage (n,), clip)`` for the clips 0.1, 0.2 and 0.3."""
    generator = torch.Generator().manual_seed(seed)
    return [(_base.rand(n, generator) * 1.5 + 0.25, _base.randn(n, generator), clip) for clip in (0.1, 0.2, 0.3)]


def check_clipped_surrogate(surrogate: Callable[..., Tensor]) -> bool:
    """Check ``surrogate(ratio, advantage, clip)``, PPO's ``min(ρA, clip(ρ, 1 − ε, 1 + ε)·A)`` elementwise."""
    return compare(surrogate, finetune.clipped_surrogate, _ratio_cases(4, 32), "check_clipped_surrogate", [
        ("there is no clipping: ρ·A alone lets one rollout move the policy arbitrarily far", lambda r, a, c: r * a),
        ("only the clipped term is used: take the min with the unclipped ρ·A (pessimistic bound)",
         lambda r, a, c: r.clamp(1 - c, 1 + c) * a),
        ("max instead of min: the surrogate must be the pessimistic (smaller) of the two",
         lambda r, a, c: torch.maximum(r * a, r.clamp(1 - c, 1 + c) * a)),
    ])


def check_clip_blocks(blocked: Callable[..., Tensor]) -> bool:
    """Check ``blocked(ratio, advantage, clip) -> (n,)`` of 0/1 (or bool): 1 where the clipped surrogate
    ``min(ρA, clip(ρ, 1 − ε, 1 + ε)·A)`` does not depend on ``ρ``, so the sample's gradient is zero (the clip
    bites): ``A > 0`` and ``ρ > 1 + ε``, or ``A < 0`` and ``ρ < 1 − ε``. The reference asks autograd."""

    def reference(ratio, advantage, clip):
        ratio = ratio.clone().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(finetune.clipped_surrogate(ratio, advantage, clip).sum(), ratio)
        return (gradient == 0).to(advantage.dtype)

    def as_float(result):
        return result.to(torch.float32) if isinstance(result, Tensor) else result

    def outside(r, a, c):
        return ((r < 1 - c) | (r > 1 + c)).float()

    return compare(lambda r, a, c: as_float(blocked(r, a, c)), reference, _ratio_cases(5, 40), "check_clip_blocks", [
        ("every ρ outside [1 − ε, 1 + ε] is marked: but where A > 0 and ρ < 1 − ε (or A < 0 and ρ > 1 + ε) the min "
         "picks the unclipped ρ·A, whose gradient is alive", outside),
        ("the sides are swapped: with A > 0 the clip stops ρ from growing past 1 + ε, with A < 0 from shrinking below 1 − ε",
         lambda r, a, c: (((a > 0) & (r < 1 - c)) | ((a < 0) & (r > 1 + c))).float()),
        ("the marks are the other way round: mark where the gradient is zero, not where it flows",
         lambda r, a, c: 1 - reference(r, a, c)),
    ])
