"""Checkers for the notebooks' exercises: the student writes a piece of a method, a checker runs it
next to the library's reference on random inputs and says in plain words what is wrong.

Each ``check_*`` prints one verdict and returns True when the student's function agrees with the
reference on every case. A function that still raises ``NotImplementedError`` is reported as not
written yet (not as a failure of the notebook), so an unsolved exercise cell runs through.

One module per topic, each built on :mod:`._check` (``compare``, the shared random cases) and never on
another topic: :mod:`.fundamentals` (notebooks 00–02), :mod:`.pairings` (couplings: 02, 03, 06, 13),
:mod:`.few_steps` (distillation, MeanFlow, flow maps: 05, 07, 08), :mod:`.likelihood` (normalizing flows:
09, 10), :mod:`.sampling` (DDIM, scores, SDEs, schedules, search: 04, 11, 12), :mod:`.steering` (guidance
and reward fine-tuning: 13, 14) and :mod:`.beyond_2d` (latent flows and digits: 15, 16). Every checker
is importable from here, ``toyflow.exercises.check_…``.

>>> def euler(v, x, t, dt):
...     return x + dt * v(x, t.expand(len(x)))
>>> check_euler_step(euler)
check_euler_step: correct on 4 random cases.
True
>>> check_euler_step(lambda v, x, t, dt: x - dt * v(x, t.expand(len(x))))
check_euler_step: wrong on case 1: it looks like the step goes backwards: use x + dt·v, not x − dt·v.
False
"""

from ._check import Case, Diagnosis, compare
from .beyond_2d import check_latent_sample, check_nearest_training, nearest_training_distance
from .few_steps import check_distillation_loss, check_flowmap_target, check_meanflow_target, check_segment
from .fundamentals import (
    check_euler_step,
    check_flow_matching_loss,
    check_gaussian_velocity,
    check_heun_step,
    check_straightness,
    check_w2_1d,
    gaussian_velocity,
    straightness_of_path,
)
from .likelihood import check_coupling_log_prob, check_jacobi_step
from .pairings import check_monotone_pairing, check_ot_pairing, check_reflow_pairs, check_within_class_pairing
from .sampling import (
    check_bellman,
    check_ddim_step,
    check_euler_maruyama_step,
    check_lookahead,
    check_scaled_score,
    check_score_from_velocity,
    ddim_step,
    scaled_score,
)
from .steering import check_cfg, check_clip_blocks, check_clipped_surrogate, check_endpoint_estimate, check_group_advantages

__all__ = [
    "Case", "Diagnosis", "compare",
    # fundamentals
    "check_euler_step", "check_heun_step", "check_flow_matching_loss", "check_w2_1d", "gaussian_velocity",
    "check_gaussian_velocity", "straightness_of_path", "check_straightness",
    # pairings
    "check_ot_pairing", "check_reflow_pairs", "check_monotone_pairing", "check_within_class_pairing",
    # few_steps
    "check_distillation_loss", "check_meanflow_target", "check_flowmap_target", "check_segment",
    # likelihood
    "check_coupling_log_prob", "check_jacobi_step",
    # sampling
    "ddim_step", "check_ddim_step", "check_score_from_velocity", "scaled_score", "check_scaled_score",
    "check_euler_maruyama_step", "check_bellman", "check_lookahead",
    # steering
    "check_cfg", "check_endpoint_estimate", "check_group_advantages", "check_clipped_surrogate", "check_clip_blocks",
    # beyond_2d
    "check_latent_sample", "nearest_training_distance", "check_nearest_training",
]
