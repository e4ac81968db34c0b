import pytest
import torch

import toyflow
from toyflow import models
from toyflow.closed_form import GaussianToGaussian
from toyflow.flowmap import Counted, FlowMapDistillation, distill_flow_map, flowmap_target
from toyflow.meanflow import TimePairs, sample

CASE = GaussianToGaussian(mean=(3.0, -1.0), std=0.5)


def _times(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.rand(n, generator=generator, dtype=torch.float64)
    return s, s + (1 - s) * torch.rand(n, generator=generator, dtype=torch.float64)


def test_the_exact_average_velocity_is_a_fixed_point_of_the_data_free_target(generator):
    x = 2 * torch.randn(500, 2, generator=generator, dtype=torch.float64)
    s, t = _times(500, generator)
    t[:50] = s[:50]  # s = t: the target is the teacher's velocity
    exact = CASE.average_velocity(x, s, t)
    target = flowmap_target(CASE.average_velocity, CASE.velocity, x, s, t)
    assert (target - exact).abs().max() < 1e-10
    torch.testing.assert_close(target[:50], CASE.velocity(x[:50], s[:50]))


def test_a_wrong_flow_map_is_not_a_fixed_point(generator):
    """The Euler map u(x, s, t) = v(x, s) is exact only for straight paths: the target must move it."""
    x = 2 * torch.randn(500, 2, generator=generator, dtype=torch.float64)
    s, t = _times(500, generator)
    euler = lambda x, s, t: CASE.velocity(x, s)  # noqa: E731
    assert (flowmap_target(euler, CASE.velocity, x, s, t) - euler(x, s, t)).abs().max() > 0.1


def test_distillation_learns_the_exact_flow_map_from_source_samples_only():
    source, target = Counted(CASE.source), Counted(CASE.target)
    toyflow.seed(0)
    student, history = distill_flow_map(CASE.velocity, source, 300, student=models.VelocityMLP(hidden=64, times=2),
                                        time=TimePairs(equal=0.5), batch_size=128, lr=1e-2, grad_clip=1.0, progress=False)
    assert target.drawn == 0 and source.drawn == 300 * 128
    z = CASE.source.sample(2000, torch.Generator().manual_seed(1))
    exact = CASE.flow_map(z, 0.0, 1.0)
    euler_error = (z + CASE.velocity(z, 0.0) - exact).norm(dim=1).mean().item()  # one Euler step of the teacher
    errors = [(sample(student, z, k).x - exact).norm(dim=1).mean().item() for k in (1, 4)]
    assert errors[0] < 0.5 * euler_error, f"one step of the student ({errors[0]:.3f}) vs one Euler step ({euler_error:.3f})"
    assert errors[1] < 0.2, f"four steps of the student are off by {errors[1]:.3f}"


def test_bad_input():
    with pytest.raises(ValueError, match="batch_size must be an int >= 2, got 1"):
        FlowMapDistillation(CASE.velocity, CASE.source, batch_size=1)
    with pytest.raises(ValueError, match="p .* must be >= 0"):
        FlowMapDistillation(CASE.velocity, CASE.source, p=-1.0)
    with pytest.raises(ValueError, match="c must be > 0"):
        FlowMapDistillation(CASE.velocity, CASE.source, c=0.0)
    with pytest.raises(ValueError, match=r"from_zero .* must be in \[0, 1\], got 2"):
        FlowMapDistillation(CASE.velocity, CASE.source, from_zero=2.0)


def test_only_the_student_gets_gradients():
    toyflow.seed(0)
    teacher, student = models.VelocityMLP(hidden=16), models.VelocityMLP(hidden=16, times=2)
    FlowMapDistillation(teacher, CASE.source, batch_size=8)(student, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None for p in teacher.parameters()) and all(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_the_checker_passes_the_reference_and_names_each_mistake(capsys):
    from toyflow import exercises

    assert exercises.check_flowmap_target(flowmap_target)

    def with_mistake(where, sign, gap_on_du):
        def target(u, teacher, x, s, t):
            average, du = torch.func.jvp(u, (x, s, t), (torch.zeros_like(x), torch.zeros_like(s), torch.ones_like(t)))
            gap = (t - s)[:, None]
            end = x if where == "start" else x + gap * average
            return teacher(end, s if where == "time s" else t) + sign * (gap if gap_on_du else 1) * du
        return target

    mistakes = ((with_mistake("start", -1, True), "asked at the start point"),
                (with_mistake("time s", -1, True), "asked at time s"),
                (with_mistake("end", 1, True), "wrong sign"),
                (with_mistake("end", -1, False), "missing its factor"))
    for mistake, words in mistakes:
        assert not exercises.check_flowmap_target(mistake)
        assert words in capsys.readouterr().out
    assert not exercises.check_flowmap_target(lambda u, teacher, x, s, t: u(x, s, t))
