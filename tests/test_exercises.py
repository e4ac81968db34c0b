"""Each checker accepts the reference, names the common mistakes it knows, and reports an unwritten exercise."""

import ot
import torch

from toyflow import exercises, meanflow, solvers


def _verdict(capsys, checker, function) -> tuple[bool, str]:
    passed = checker(function)
    return passed, capsys.readouterr().out


def _flow_matching_loss(v, x0, x1, t, target=None):
    x_t = (1 - t)[:, None] * x0 + t[:, None] * x1
    return ((v(x_t, t) - (x1 - x0 if target is None else target)) ** 2).mean()


def _ot_pairing(x0, x1):
    weights = torch.full((len(x0),), 1 / len(x0), dtype=x0.dtype)
    return x1[ot.emd(weights, weights, torch.cdist(x0, x1) ** 2).argmax(1)]


def _reflow_pairs(v, z0, steps):
    z = z0
    for i in range(steps):
        z = z + v(z, torch.full((len(z),), i / steps, dtype=z.dtype)) / steps
    return z0, z


def _meanflow_target(u, x, s, t, v):
    _, du_ds = torch.func.jvp(u, (x, s, t), (v, torch.ones_like(s), torch.zeros_like(t)))
    return v + (t - s)[:, None] * du_ds


CORRECT = [
    (exercises.check_euler_step, solvers.euler_step),
    (exercises.check_heun_step, solvers.heun_step),
    (exercises.check_flow_matching_loss, _flow_matching_loss),
    (exercises.check_ot_pairing, _ot_pairing),
    (exercises.check_reflow_pairs, _reflow_pairs),
    (exercises.check_meanflow_target, meanflow.meanflow_target),
    (exercises.check_meanflow_target, _meanflow_target),
]

MISTAKES = [
    (exercises.check_euler_step, lambda v, x, t, dt: x + v(x, t.expand(len(x))), "forgets dt"),
    (exercises.check_heun_step, solvers.euler_step, "Euler step"),
    (exercises.check_heun_step, solvers.midpoint_step, "off by"),
    (exercises.check_flow_matching_loss, lambda v, x0, x1, t: _flow_matching_loss(v, x0, x1, t) * 2, "sums over the dimensions"),
    (exercises.check_flow_matching_loss, lambda v, x0, x1, t: _flow_matching_loss(v, x0, x1, t, x0 - x1), "points backwards"),
    (exercises.check_ot_pairing, lambda x0, x1: x1, "independent coupling"),
    (exercises.check_ot_pairing, lambda x0, x1: x1[:5], "expected shape (24, 2), got (5, 2)"),
    (exercises.check_reflow_pairs, lambda v, z0, steps: _reflow_pairs(v, z0, steps)[::-1], "reversed"),
    (exercises.check_reflow_pairs, lambda v, z0, steps: _reflow_pairs(v, z0, 1), "only one step"),
    (exercises.check_reflow_pairs, lambda v, z0, steps: z0, "return the pair"),
    (exercises.check_meanflow_target, lambda u, x, s, t, v: 2 * v - _meanflow_target(u, x, s, t, v), "sign"),
]


def test_checkers_accept_the_reference(capsys):
    for checker, function in CORRECT:
        passed, out = _verdict(capsys, checker, function)
        assert passed and "correct" in out, out


def test_checkers_name_the_mistake(capsys):
    for checker, function, words in MISTAKES:
        passed, out = _verdict(capsys, checker, function)
        assert not passed and words in out, (checker.__name__, out)


def test_an_unwritten_exercise_is_reported_not_raised(capsys):
    def stub(*args):
        raise NotImplementedError

    passed, out = _verdict(capsys, exercises.check_ot_pairing, stub)
    assert not passed and "not written yet" in out
    passed, out = _verdict(capsys, exercises.check_ot_pairing, lambda x0, x1: float("nan") * x1)
    assert not passed and "NaN" in out
    passed, out = _verdict(capsys, exercises.check_ot_pairing, lambda x0, x1: x1.tolist())
    assert not passed and "torch.Tensor" in out
