"""The whole pipeline on a GPU: data → couplings → fit → solvers → metrics → rectify → meanflow → nf.

Skipped (with the reason) where torch sees no CUDA device. Each test runs a piece on the GPU and on the
CPU and compares the two. toyflow's device rule makes that comparison possible: random numbers are drawn
on the *generator's* device and then moved, so a CPU generator hands the same numbers to both runs and
only floating-point rounding differs (training amplifies it a little: those tolerances are looser).

``TOYFLOW_TEST_DEVICE=cpu pytest tests/test_cuda.py`` runs the same checks with the CPU in place of the
GPU, a dry run of the test code itself on a machine without one.
"""

import copy
import os
from types import SimpleNamespace

import pytest
import torch

import toyflow
from toyflow import couplings, data, meanflow, metrics, nf, rectify, solvers
from toyflow.closed_form import GaussianToGaussian
from toyflow.flow_matching import FlowMatching
from toyflow.models import VelocityMLP
from toyflow.train import fit

DEVICE = torch.device(os.environ.get("TOYFLOW_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False"
)
CPU = torch.device("cpu")
CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)


def _cpu_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _on_both(make):
    """The same freshly initialised module on the CPU and on the device."""
    toyflow.seed(0)
    module = make()
    return module, copy.deepcopy(module).to(DEVICE)


def _with_cpu_generator(objective, seed: int = 0):
    """The objective driven by its own CPU generator, so the CPU and the GPU run see the same random numbers."""
    generator = _cpu_generator(seed)
    return lambda model, _: objective(model, generator)


def _close(gpu: torch.Tensor, cpu: torch.Tensor, atol: float, rtol: float = 0.0) -> None:
    assert gpu.device.type == DEVICE.type, f"the result left the device: it is on {gpu.device}"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=atol, rtol=rtol)


# ---- data and couplings ----


@pytest.mark.parametrize("name", sorted(data.REGISTRY))
def test_data_drawn_with_a_cpu_generator_are_the_same_numbers_on_the_device(name):
    dist = data.get(name)
    _close(dist.sample(300, _cpu_generator(), DEVICE), dist.sample(300, _cpu_generator()), atol=0.0)
    native = dist.sample(300, torch.Generator(DEVICE).manual_seed(0))  # a device generator draws there
    assert native.device.type == DEVICE.type and torch.isfinite(native).all()


def test_couplings_pair_the_same_points_on_the_device():
    g = _cpu_generator()
    x0, x1 = data.get("8gaussians").sample(128, g), data.get("moons").sample(128, g)
    cpu, gpu = couplings.ExactOT()(x0, x1), couplings.ExactOT()(x0.to(DEVICE), x1.to(DEVICE))
    assert gpu.x1.device.type == DEVICE.type
    assert metrics.transport_cost(gpu.x0, gpu.x1) == pytest.approx(metrics.transport_cost(cpu.x0, cpu.x1), rel=1e-5)
    sinkhorn = couplings.SinkhornOT(reg=1.0)
    _close(sinkhorn.plan(x0.to(DEVICE), x1.to(DEVICE)), sinkhorn.plan(x0, x1), atol=1e-6)
    drawn = sinkhorn(x0.to(DEVICE), x1.to(DEVICE), generator=_cpu_generator(1))  # CPU generator, points on the device
    _close(drawn.x1, sinkhorn(x0, x1, generator=_cpu_generator(1)).x1, atol=1e-6)
    _close(couplings.GibbsWeighted(1.0)(x0.to(DEVICE), x1.to(DEVICE)).weight, couplings.GibbsWeighted(1.0)(x0, x1).weight,
           atol=1e-5)
    fixed = couplings.FixedPairs(x0.to(DEVICE), x1.to(DEVICE)).sample(64, _cpu_generator(2))
    _close(fixed.x1, couplings.FixedPairs(x0, x1).sample(64, _cpu_generator(2)).x1, atol=0.0)
    sampler = couplings.PairSampler(data.get("gaussian"), data.get("moons"), couplings.ExactOT())
    assert sampler.sample(64, torch.Generator(DEVICE).manual_seed(0)).x1.device.type == DEVICE.type


# ---- training, solvers, metrics ----


@pytest.fixture(scope="module")
def trained_pair():
    """A flow-matching model trained for 300 steps on the CPU and on the device from the same start and draws."""
    cpu, gpu = _on_both(lambda: VelocityMLP(hidden=64))
    pairs = couplings.PairSampler(data.get("8gaussians"), data.get("moons"))
    histories = [fit(model, _with_cpu_generator(FlowMatching(pairs)), 300, lr=2e-3, progress=False, ema=0.99)
                 for model in (cpu, gpu)]
    return cpu, gpu, histories


def test_fit_on_the_device_follows_the_cpu_run(trained_pair):
    cpu, gpu, (cpu_history, gpu_history) = trained_pair
    assert next(gpu.parameters()).device.type == DEVICE.type
    torch.testing.assert_close(torch.tensor(gpu_history.loss[:50]), torch.tensor(cpu_history.loss[:50]), atol=1e-3, rtol=1e-3)
    x = torch.randn(500, 2, generator=_cpu_generator(3)) * 3
    t = torch.rand(500, generator=_cpu_generator(4))
    with torch.no_grad():
        _close(gpu(x.to(DEVICE), t.to(DEVICE)), cpu(x, t), atol=5e-2)


def test_fit_with_its_own_device_generator_trains_on_the_device():
    toyflow.seed(0)
    model = VelocityMLP(hidden=32).to(DEVICE)
    objective = FlowMatching(couplings.PairSampler(data.get("8gaussians"), data.get("moons"), couplings.ExactOT()))
    history = fit(model, objective, 100, lr=2e-3, progress=False, grad_clip=1.0)
    assert history.loss[-1] < history.loss[0] and next(model.parameters()).device.type == DEVICE.type


@pytest.mark.parametrize("method", sorted(solvers.STEPS))
def test_solvers_agree_on_the_closed_form_flow(method):
    x0 = CASE.source.sample(400, _cpu_generator())
    cpu = solvers.integrate(CASE.velocity, x0, 20, method, return_path=True)
    gpu = solvers.integrate(CASE.velocity, x0.to(DEVICE), 20, method, return_path=True)
    _close(gpu.x, cpu.x, atol=1e-5)
    _close(gpu.path, cpu.path, atol=1e-5)
    assert gpu.nfe == cpu.nfe
    _close(solvers.integrate_adaptive(CASE.velocity, x0.to(DEVICE)).x, solvers.integrate_adaptive(CASE.velocity, x0).x, atol=1e-4)


def test_metrics_agree_on_device_tensors(trained_pair):
    cpu, gpu, _ = trained_pair
    g = _cpu_generator(5)
    x0, x1 = data.get("8gaussians").sample(500, g), data.get("moons").sample(500, g)
    d0, d1 = x0.to(DEVICE), x1.to(DEVICE)
    assert metrics.w2(d0, d1) == pytest.approx(metrics.w2(x0, x1), rel=1e-5)
    assert metrics.sliced_w2(d0, d1, generator=_cpu_generator()) == pytest.approx(
        metrics.sliced_w2(x0, x1, generator=_cpu_generator()), rel=1e-5)
    assert metrics.mmd(d0, d1) == pytest.approx(metrics.mmd(x0, x1), rel=1e-4)
    assert metrics.straightness(gpu, d0) == pytest.approx(metrics.straightness(cpu, x0), rel=0.1, abs=0.02)
    gpu_curve, cpu_curve = metrics.w2_by_nfe(gpu, d0, d1, (1, 8)), metrics.w2_by_nfe(cpu, x0, x1, (1, 8))
    assert gpu_curve == pytest.approx(cpu_curve, abs=0.05)
    exact = metrics.cnf_log_prob(CASE.velocity, CASE.target.sample(200, g).to(DEVICE), CASE.source.log_prob)
    assert exact.device.type == DEVICE.type and torch.isfinite(exact).all()


# ---- methods ----


def test_rectified_flow_and_distillation_run_on_the_device():
    toyflow.seed(0)
    model = VelocityMLP(hidden=32).to(DEVICE)
    rounds = rectify.rectified_flow(CASE.source, CASE.target, rounds=2, steps=60, num_pairs=500, model=model, progress=False)
    assert rounds[1].pairs.z1.device.type == DEVICE.type
    student = copy.deepcopy(rounds[1].model)
    rectify.distill(student, rounds[1].pairs, 30, progress=False)
    assert rectify.one_step(student)(torch.zeros(4, 2, device=DEVICE)).device.type == DEVICE.type
    annealed = rectify.AnnealedPairs(rounds[1].pairs, warmup=5).sample(16, _cpu_generator())
    assert annealed.x0.device.type == DEVICE.type
    x0 = CASE.source.sample(300, _cpu_generator())
    _close(rectify.sample_pairs(CASE.velocity, x0.to(DEVICE), steps=20).z1, rectify.sample_pairs(CASE.velocity, x0, steps=20).z1,
           atol=1e-5)


@pytest.mark.parametrize("objective", [meanflow.MeanFlow, meanflow.SplitMeanFlow])
def test_meanflow_losses_agree_and_train_on_the_device(objective):
    cpu, gpu = _on_both(lambda: VelocityMLP(hidden=32, times=2))
    pairs = couplings.PairSampler(CASE.source, CASE.target)
    loss = objective(pairs, batch_size=128, dispersive=0.1)
    gpu_loss, cpu_loss = loss(gpu, _cpu_generator()), loss(cpu, _cpu_generator())
    assert gpu_loss.item() == pytest.approx(cpu_loss.item(), rel=1e-4)
    fit(gpu, loss, 50, lr=1e-2, grad_clip=1.0, progress=False)
    x0 = torch.randn(100, 2, generator=_cpu_generator(1))
    one_step = meanflow.sample(gpu, x0.to(DEVICE)).x
    assert one_step.device.type == DEVICE.type and torch.isfinite(one_step).all()


FLOWS = {
    "realnvp": lambda: nf.RealNVP(layers=4, hidden=16),
    "maf": lambda: nf.MAF(layers=4, hidden=16),
    "tarflow": lambda: nf.TARFlow(tokens=2, channels=1, blocks=2, width=16, heads=2),
    "spline": lambda: nf.SplineFlow(layers=2, hidden=16),
}


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_normalizing_flows_agree_on_the_device(name):
    cpu, gpu = _on_both(FLOWS[name])
    with torch.no_grad():
        for p in cpu.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=_cpu_generator()))
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn((200, *cpu.event_shape), generator=_cpu_generator(1))
    with torch.no_grad():
        _close(gpu.log_prob(x.to(DEVICE)), cpu.log_prob(x), atol=1e-4)
        _close(gpu.sample(50, _cpu_generator(2)), cpu.sample(50, _cpu_generator(2)), atol=1e-4)
    points = data.get("8gaussians")
    tokens = SimpleNamespace(sample=lambda n, g, device: points.sample(n, g, device).reshape(n, *gpu.event_shape),
                             draws_points=True)
    objective = nf.MaximumLikelihood(tokens, batch_size=128)
    history = fit(gpu, objective, 30, lr=1e-3, progress=False)
    assert len(history.loss) == 30 and next(gpu.parameters()).device.type == DEVICE.type


def test_the_command_line_trains_on_the_device(tmp_path):
    from toyflow.cli import main

    main(["train", "--steps", "20", "--device", DEVICE.type, "--out", str(tmp_path), "--no-progress", "--coupling", "sinkhorn"])
    assert (tmp_path / "metrics.json").exists()
