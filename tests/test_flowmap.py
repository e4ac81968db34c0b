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
    assert target.drawn == 0 and source.drawn == 300 * 128 and source.dim == 2
    z = CASE.source.sample(2000, torch.Generator().manual_seed(1))
    exact = CASE.flow_map(z, 0.0, 1.0)
    euler_error = (z + CASE.velocity(z, 0.0) - exact).norm(dim=1).mean().item()  # one Euler step of the teacher
    errors = [(sample(student, z, k).x - exact).norm(dim=1).mean().item() for k in (1, 4)]
    assert errors[0] < 0.5 * euler_error, f"one step of the student ({errors[0]:.3f}) vs one Euler step ({euler_error:.3f})"
    assert errors[1] < 0.2, f"four steps of the student are off by {errors[1]:.3f}"


def test_the_loss_is_the_mean_over_dimensions_and_both_gradients_share_its_value():
    """p = 0: the loss is mean_{i, k} Δ_ik², the squared error averaged over points AND dimensions (not summed)."""
    toyflow.seed(0)
    teacher, student = models.VelocityMLP(hidden=16), models.VelocityMLP(hidden=16, times=2)
    objective = FlowMapDistillation(teacher, CASE.source, batch_size=8, from_zero=0.0, p=0.0)
    loss = objective(student, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    z = CASE.source.sample(8, g)
    s, t = TimePairs()(8, generator=g)
    with torch.no_grad():
        xs = z + s[:, None] * student(z, torch.zeros_like(s), s)
        expected = ((student(xs, s, t) - flowmap_target(student, teacher, xs, s, t)) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)
    through = FlowMapDistillation(teacher, CASE.source, batch_size=8, from_zero=0.0, p=0.0, gradient="through")
    loss_through = through(student, torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss_through, loss, rtol=1e-5, atol=1e-6)  # the same residual: the same value
    grads = [torch.autograd.grad(value, list(student.parameters())) for value in (loss, loss_through)]
    assert any(not torch.allclose(a, b) for a, b in zip(*grads)), "through ∂_t X the gradient must differ"


def test_objective_contract_generator_none_and_float64():
    toyflow.seed(0)
    teacher, student = models.VelocityMLP(hidden=16), models.VelocityMLP(hidden=16, times=2)
    assert torch.isfinite(FlowMapDistillation(teacher, CASE.source, batch_size=8)(student))  # generator=None
    double = GaussianToGaussian(mean=(3.0, -1.0), std=0.5)

    class Double(toyflow.data.Distribution):
        def _sample(self, n, generator, device):
            return double.source.sample(n, generator, device).double()

    for gradient in ("stop", "through"):
        loss = FlowMapDistillation(teacher.double(), Double(), batch_size=8, gradient=gradient)(student.double())
        assert loss.dtype == torch.float64


def test_the_paper_gradient_also_learns_the_flow_map():
    toyflow.seed(0)
    student, _ = distill_flow_map(CASE.velocity, CASE.source, 300, student=models.VelocityMLP(hidden=64, times=2),
                                  time=TimePairs(equal=0.5), batch_size=128, gradient="through", lr=1e-2, grad_clip=1.0,
                                  progress=False)
    z = CASE.source.sample(2000, torch.Generator().manual_seed(1))
    exact = CASE.flow_map(z, 0.0, 1.0)
    euler_error = (z + CASE.velocity(z, 0.0) - exact).norm(dim=1).mean().item()
    error = (sample(student, z, 1).x - exact).norm(dim=1).mean().item()
    assert error < 0.5 * euler_error, f"one step of the student ({error:.3f}) vs one Euler step ({euler_error:.3f})"


def test_bad_input():
    bad = {"teacher": (3, TypeError, "teacher must be"), "source": (3, TypeError, "source must be a distribution"),
           "time": (0.5, TypeError, "time must be"), "batch_size": (1, ValueError, "batch_size must be an int >= 2, got 1"),
           "p": (-1.0, ValueError, "p must be .*>= 0"), "c": (0.0, ValueError, "c must be .*> 0"),
           "from_zero": (2.0, ValueError, r"from_zero must be .*<= 1.*got 2"),
           "gradient": ("sideways", ValueError, r"gradient must be one of \['stop', 'through'\]")}
    for name, (value, error, words) in bad.items():
        with pytest.raises(error, match=words):
            FlowMapDistillation(**{"teacher": CASE.velocity, "source": CASE.source, name: value})
    with pytest.raises(TypeError, match="distribution must be a distribution"):
        Counted("gaussian")


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
