import math

import matplotlib.pyplot as plt
import pytest
import torch

import toyflow
from toyflow import data, metrics, nf, plot
from toyflow.closed_form import GaussianToGaussian
from toyflow.nf import MAF, Curves, MaximumLikelihood, RealNVP, SplineFlow, TARFlow, rational_quadratic_spline
from toyflow.train import fit

FLOWS = {
    "realnvp": lambda: RealNVP(dim=2, layers=4, hidden=16),
    "maf": lambda: MAF(dim=2, layers=4, hidden=16),
    "maf 3d": lambda: MAF(dim=3, layers=3, hidden=16),
    "spline": lambda: SplineFlow(dim=2, layers=4, bins=6, bound=4.0, hidden=16),
    "spline 3d": lambda: SplineFlow(dim=3, layers=3, bins=5, bound=3.0, hidden=16),
    "tarflow 2d": lambda: TARFlow(tokens=2, channels=1, blocks=2, width=16, heads=2),
    "tarflow curves": lambda: TARFlow(tokens=6, channels=2, blocks=2, width=16, heads=2),
}
PLANAR = ["realnvp", "maf", "spline", "tarflow 2d"]


def _random_flow(name: str, scale: float = 0.1) -> torch.nn.Module:
    """A flow whose weights are moved off their identity initialisation, so every layer does something."""
    toyflow.seed(0)
    flow = FLOWS[name]()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow.eval()


def _inputs(flow, n: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn((n, *flow.event_shape), generator=torch.Generator().manual_seed(1), dtype=dtype)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_inverse_undoes_forward_and_their_log_dets_cancel(name):
    flow = _random_flow(name)
    x = _inputs(flow, 200)
    with torch.no_grad():
        z, log_det = flow(x)
        back, inverse_log_det = flow.inverse(z)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(inverse_log_det, -log_det, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_log_dets_are_the_log_abs_det_of_the_autograd_jacobian(name):
    flow = _random_flow(name, scale=0.3).double()
    for x in _inputs(flow, 3, torch.float64):
        for direction in (flow.forward, flow.inverse):
            jacobian = torch.autograd.functional.jacobian(lambda v, f=direction: f(v[None])[0][0].flatten(), x)
            expected = torch.linalg.slogdet(jacobian.reshape(x.numel(), x.numel()))[1]
            assert direction(x[None])[1].item() == pytest.approx(expected.item(), abs=1e-8)


@pytest.mark.parametrize("name", PLANAR)
def test_each_planar_flow_density_integrates_to_one(name):
    flow = _random_flow(name)
    axis = torch.linspace(-10, 10, 401)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1).reshape(-1, *flow.event_shape)
    with torch.no_grad():
        total = flow.log_prob(grid).exp().sum().item() * (axis[1] - axis[0]).item() ** 2
    assert total == pytest.approx(1.0, abs=0.01)


def test_maximum_likelihood_fits_a_gaussian_to_its_entropy():
    target = data.get("gaussian", mean=(2.0, -1.0), std=0.5)
    toyflow.seed(0)
    flow = MAF(dim=2, layers=2, hidden=16)
    fit(flow, MaximumLikelihood(target), steps=400, lr=1e-2, progress=False)
    x = target.sample(4000, torch.Generator().manual_seed(1))
    with torch.no_grad():
        gap = (target.log_prob(x) - flow.log_prob(x)).mean().item()  # KL(target ‖ flow) ≥ 0, estimated
    assert -0.02 < gap < 0.02, f"the flow's NLL is {gap:.4f} nats above the true NLL"


def test_jacobi_and_gauss_seidel_jacobi_reproduce_sequential_decoding_in_at_most_T_passes():
    flow = _random_flow("tarflow curves", scale=0.05)
    z = _inputs(flow, 64)
    with torch.no_grad():
        sequential = flow.decode(z, "sequential")
        assert sequential.iterations == [6, 6]
        for method, group in (("jacobi", None), ("gs-jacobi", 2), ("gs-jacobi", 4)):
            decoded = flow.decode(z, method, group=group)
            torch.testing.assert_close(decoded.x, sequential.x, atol=1e-5, rtol=0)
            torch.testing.assert_close(decoded.log_det, sequential.log_det, atol=1e-5, rtol=0)
            assert all(1 <= passes <= 6 for passes in decoded.iterations), (method, group, decoded.iterations)


def test_after_k_jacobi_iterations_the_first_k_tokens_are_exact():
    flow = _random_flow("tarflow curves", scale=0.3)
    block, z = flow.layers[0], _inputs(flow, 32)  # the first block reads the tokens in order
    with torch.no_grad():
        exact = block.solve(z, group=1)[0]
        errors = [(block.solve(z, group=6, tol=0.0, max_iterations=k)[0] - exact).abs().amax((0, 2)) for k in range(1, 7)]
    for k, error in enumerate(errors, start=1):
        assert error[:k].max() < 1e-5, f"after {k} iterations token errors are {error.tolist()}"
    assert errors[0][1:].max() > 1e-3, "one iteration should not already be exact on a random flow"


def test_denoise_is_tweedie_for_a_standard_normal_flow():
    flow = RealNVP(dim=2, layers=2)  # zero-initialised: the identity, so p = N(0, I) and the score is −x
    x = torch.randn(10, 2)
    torch.testing.assert_close(flow.denoise(x, noise=0.1), 0.99 * x)


def test_cnf_log_prob_of_the_closed_form_field_at_default_float32_settings():
    """The NLL tables call metrics.cnf_log_prob in float32 at its default tolerances: accurate to 1e-3 nats."""
    case = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)
    x1 = case.target.sample(500, torch.Generator().manual_seed(2))
    log_prob = metrics.cnf_log_prob(case.velocity, x1, case.source.log_prob)
    assert (log_prob - case.target.log_prob(x1)).abs().max() < 1e-3


def test_curves_are_reproducible_sequences_of_the_asked_kinds():
    curves = Curves(length=10, noise=0.0, kinds=("circle",))
    x = curves.sample(50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 10, 2) and curves.event_shape == (10, 2)
    assert torch.equal(x, curves.sample(50, torch.Generator().manual_seed(0)))
    steps = (x[:, 1:] - x[:, :-1]).norm(dim=-1)  # equal chords on a circle
    torch.testing.assert_close(steps, steps[:, :1].expand_as(steps), atol=1e-5, rtol=0)


def test_sampling_draws_from_the_flow_reproducibly():
    flow = _random_flow("tarflow curves")
    first = flow.sample(5, torch.Generator().manual_seed(3))
    assert first.shape == (5, 6, 2) and torch.equal(first, flow.sample(5, torch.Generator().manual_seed(3)))


def test_bad_input():
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\), got \(4, 3\)"):
        RealNVP()(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 6, 2\), got \(4, 6\)"):
        TARFlow(tokens=6, width=16).decode(torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"method must be one of \['sequential', 'jacobi', 'gs-jacobi'\], got 'newton'"):
        TARFlow(tokens=6, width=16).decode(torch.zeros(4, 6, 2), "newton")
    with pytest.raises(ValueError, match="group must be an int >= 1, got 0"):
        TARFlow(tokens=6, width=16).decode(torch.zeros(4, 6, 2), "gs-jacobi", group=0)
    with pytest.raises(ValueError, match="width must be divisible by heads"):
        TARFlow(tokens=6, width=10, heads=4)
    with pytest.raises(ValueError, match="dim must be >= 2"):
        RealNVP(dim=1)
    with pytest.raises(ValueError, match="layers must be an int >= 1, got 0"):
        MAF(layers=0)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        MaximumLikelihood(data.get("moons"), noise=-1.0)
    with pytest.raises(ValueError, match="kinds must be a non-empty selection"):
        Curves(kinds=("zigzag",))
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        Curves(length=1)
    assert math.isfinite(MaximumLikelihood(Curves(length=6), batch_size=8)(TARFlow(tokens=6, width=16), None).item())


def test_curves_are_drawn_as_polylines():
    ax = plot.curves(Curves(length=8).sample(20, torch.Generator().manual_seed(0)), count=10, points=True)
    assert len(ax.collections[0].get_segments()) == 10 and len(ax.collections) == 2
    plt.close("all")


def test_a_cpu_generator_draws_the_same_latents_for_a_flow_on_any_device():
    """The device rule: a flow on the meta device draws its latents with a CPU generator, then moves them."""
    flow = RealNVP(layers=2, hidden=8).to("meta")
    assert flow.sample(7, torch.Generator().manual_seed(0)).device.type == "meta"


# ---- the rational-quadratic spline ----


def _spline_params(shape, bins: int, scale: float = 1.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *extra: scale * torch.randn(*shape, *extra, generator=g, dtype=torch.float64)  # noqa: E731
    return draw(bins), draw(bins), draw(bins - 1)


def test_the_spline_is_monotone_meets_its_knots_and_is_the_identity_outside_and_at_zero_parameters():
    x = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    widths, heights, derivatives = (p.expand(len(x), -1) for p in _spline_params((1,), 7, scale=2.0))  # one spline
    y, log_derivative = rational_quadratic_spline(x, widths, heights, derivatives, bound=3.0)
    inside = x.abs() <= 3
    assert (y[inside].diff() > 0).all(), "the spline must be increasing"
    assert torch.equal(y[~inside], x[~inside]) and (log_derivative[~inside] == 0).all()
    ends = rational_quadratic_spline(torch.tensor([-3.0, 3.0], dtype=torch.float64), widths[:2], heights[:2],
                                     derivatives[:2], bound=3.0)[0]
    torch.testing.assert_close(ends, torch.tensor([-3.0, 3.0], dtype=torch.float64))  # continuous with the tails
    zero = torch.zeros(len(x), 7, dtype=torch.float64)
    identity, log_one = rational_quadratic_spline(x, zero, zero, zero[:, :6], bound=3.0)
    torch.testing.assert_close(identity, x)
    torch.testing.assert_close(log_one, torch.zeros_like(x))


def test_the_spline_derivative_and_inverse_are_exact():
    x = torch.linspace(-3.5, 3.5, 301, dtype=torch.float64).requires_grad_(True)
    widths, heights, derivatives = _spline_params(x.shape, 5, scale=1.5, seed=1)
    y, log_derivative = rational_quadratic_spline(x, widths, heights, derivatives, bound=3.0)
    (slope,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(log_derivative, slope.log(), atol=1e-10, rtol=0)
    back, inverse_log = rational_quadratic_spline(y.detach(), widths, heights, derivatives, bound=3.0, inverse=True)
    torch.testing.assert_close(back, x.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(inverse_log, -log_derivative.detach(), atol=1e-10, rtol=0)


def test_a_spline_flow_learns_8_gaussians_better_than_an_affine_coupling_flow_of_the_same_budget():
    """Eight modes need bending; with four layers and 300 steps the spline flow's NLL is lower than RealNVP's."""
    target = data.get("8gaussians")
    x = target.sample(4000, torch.Generator().manual_seed(1))
    gaps = {}
    for name, make in (("spline", lambda: SplineFlow(layers=4, hidden=32)), ("realnvp", lambda: RealNVP(layers=4, hidden=32))):
        toyflow.seed(0)
        flow = make()
        fit(flow, MaximumLikelihood(target), steps=300, lr=5e-3, progress=False)
        with torch.no_grad():
            gaps[name] = (target.log_prob(x) - flow.log_prob(x)).mean().item()
    assert 0 < gaps["spline"] < gaps["realnvp"], gaps


def test_spline_flow_bad_input():
    with pytest.raises(ValueError, match="bins must be an int >= 1, got 0"):
        SplineFlow(bins=0)
    with pytest.raises(ValueError, match=r"bound must be a finite number > 0 .* got -1.0"):
        SplineFlow(bound=-1.0)
    with pytest.raises(ValueError, match="dim must be >= 2"):
        SplineFlow(dim=1)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\), got \(4, 3\)"):
        SplineFlow()(torch.zeros(4, 3))


def test_denoise_names_a_negative_noise():
    with pytest.raises(ValueError, match="noise must be a finite number >= 0 .* got -1.0"):
        RealNVP(layers=1).denoise(torch.zeros(2, 2), -1.0)


def test_deep_shallow_puts_the_deep_block_next_to_the_noise():
    flow = nf.deep_shallow(tokens=6, channels=2, shallow=3, deep_layers=4, width=16, heads=2)
    assert [len(block.net.layers) for block in flow.layers] == [1, 1, 1, 4]  # data → latent; decoding starts at the deep one
    sizes = [sum(p.numel() for p in block.parameters()) for block in flow.layers]
    assert sizes[-1] > 2 * sizes[0]
    assert TARFlow(tokens=6, blocks=2, width=16, layers=[1, 3]).layers[1].net.layers.__len__() == 3


def test_group_sizes_per_block_still_reproduce_sequential_decoding():
    flow = _random_flow("tarflow curves", scale=0.05)
    z = _inputs(flow, 64)
    with torch.no_grad():
        sequential = flow.decode(z, "sequential")
        mixed = flow.decode(z, "gs-jacobi", group=[1, 6])  # the block next to the noise sequentially, the other by Jacobi
    torch.testing.assert_close(mixed.x, sequential.x, atol=1e-5, rtol=0)
    assert mixed.iterations[0] == 6 and mixed.iterations[1] <= 6


class _GaussianSequences:
    """Sequences ``(n, 4, 2)`` of independent N(0, s²) coordinates: E[x | x + σε] = s²/(s² + σ²)·(x + σε)."""

    std = 0.5
    draws_points = True  # data for batch.draw_batch, not pairs

    def sample(self, n, generator=None, device=None):
        return self.std * torch.randn(n, 4, 2, generator=generator, device=device)


def test_the_learned_denoiser_finds_the_posterior_mean():
    toyflow.seed(0)
    denoiser = nf.Denoiser(tokens=4, channels=2, hidden=32)
    x = torch.randn(100, 4, 2)
    torch.testing.assert_close(denoiser(x), x)  # starts as the identity
    noise = 0.3
    fit(denoiser, nf.Denoising(_GaussianSequences(), noise=noise), 600, lr=3e-3, progress=False)
    noised = x * 0.6
    shrink = _GaussianSequences.std**2 / (_GaussianSequences.std**2 + noise**2)
    with torch.no_grad():
        error = (denoiser(noised) - shrink * noised).abs().mean().item()
    assert error < 0.03, f"the denoiser is off the posterior mean by {error:.3f} on average"


def test_bad_input_of_the_starflow_parts():
    with pytest.raises(ValueError, match=r"group must be an int or one int per block \(2\), got 3 values"):
        TARFlow(tokens=6, blocks=2, width=16).decode(torch.zeros(4, 6, 2), "gs-jacobi", group=[1, 2, 3])
    with pytest.raises(ValueError, match=r"group\[1\] must be an int >= 1, got 0"):
        TARFlow(tokens=6, blocks=2, width=16).decode(torch.zeros(4, 6, 2), "gs-jacobi", group=[1, 0])
    with pytest.raises(ValueError, match=r"layers must be an int or one int per block \(4\), got 2 values"):
        TARFlow(tokens=6, blocks=4, width=16, layers=[1, 2])
    with pytest.raises(ValueError, match="noise must be a finite number > 0"):
        nf.Denoising(Curves(), noise=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4, 2\), got \(3, 8\)"):
        nf.Denoiser(tokens=4)(torch.zeros(3, 8))


def test_the_jacobi_step_checker(capsys):
    from toyflow import exercises

    def solution(params, z, x):
        shift, log_scale = params(x)
        return z * torch.exp(log_scale) + shift

    assert exercises.check_jacobi_step(solution)
    for mistake, words in ((lambda p, z, x: (z - p(x)[0]) * torch.exp(-p(x)[1]), "forward (density) direction"),
                           (lambda p, z, x: z * torch.exp(p(z)[1]) + p(z)[0], "computed from z"),
                           (lambda p, z, x: z * p(x)[1] + p(x)[0], "not by α")):
        assert not exercises.check_jacobi_step(mistake)
        assert words in capsys.readouterr().out


def test_wander_sequences_have_the_dialled_correlation():
    x = nf.Wander(length=16, rho=0.6).sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 16, 2)
    lag1 = (x[:, 1:] * x[:, :-1]).mean().item()
    assert x.std().item() == pytest.approx(1.0, abs=0.02) and lag1 == pytest.approx(0.6, abs=0.02)
    with pytest.raises(ValueError, match=r"rho must be a finite number >= 0 and < 1 .*, got 1.0"):
        nf.Wander(rho=1.0)


def test_jacobi_needs_few_passes_when_tokens_depend_weakly():
    """A one-block flow whose shift is ρ × the previous token: the error shrinks by ρ a pass, so far fewer than T passes."""
    toyflow.seed(0)
    flow = TARFlow(tokens=32, channels=2, blocks=1, width=16, layers=1, heads=2).double().eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(0.1)  # weak dependence between tokens
        z = torch.randn(8, 32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        sequential, jacobi = flow.decode(z, "sequential"), flow.decode(z, "jacobi", tol=1e-10)
    assert jacobi.iterations[0] < 12, jacobi.iterations
    torch.testing.assert_close(jacobi.x, sequential.x, atol=1e-8, rtol=0)


# the bottom layer: one MLP builder, the device rule, the objective contract, every argument checked --------------


def test_the_nf_mlp_is_the_base_mlp_with_its_last_layer_at_zero():
    from toyflow import _base
    from toyflow.nf.base import mlp

    toyflow.seed(0)
    ours = mlp(3, 4, 16, 2)
    toyflow.seed(0)
    base = _base.mlp(3, 4, 16, 2)
    assert [type(m) for m in ours] == [type(m) for m in base]
    for a, b in zip(list(ours.parameters())[:-2], list(base.parameters())[:-2]):
        assert torch.equal(a, b)  # same layers, same initial weights: notebook numbers do not move
    assert not ours[-1].weight.any() and not ours[-1].bias.any()


def test_sequence_data_follow_the_device_rule_and_count_as_data_for_draw_batch():
    from toyflow.batch import draw_batch

    for dist in (Curves(length=5), nf.Wander(length=5)):
        x = dist.sample(4, torch.Generator().manual_seed(0), device="meta")
        assert x.device.type == "meta" and x.shape == (4, 5, 2)
        batch = draw_batch(dist, 4, nf.Denoiser(tokens=5), torch.Generator().manual_seed(0))
        assert batch.x0 is None and torch.equal(batch.x1, dist.sample(4, torch.Generator().manual_seed(0)))


def test_the_objectives_give_float64_losses_for_float64_data_and_models():
    class Float64Curves(Curves):
        def sample(self, n, generator=None, device=None):
            return super().sample(n, generator, device).double()

    data64 = Float64Curves(length=4)
    flow = TARFlow(tokens=4, channels=2, blocks=1, width=8, heads=2).double()
    assert MaximumLikelihood(data64, batch_size=4, noise=0.1)(flow).dtype == torch.float64
    assert nf.Denoising(data64, noise=0.1, batch_size=4)(nf.Denoiser(tokens=4, hidden=8).double()).dtype == torch.float64


class _NoMarker:
    def sample(self, n, generator=None, device=None):
        return torch.zeros(n, 2)


BAD_NF_INPUT = [
    (lambda: RealNVP(hidden=0), ValueError, "hidden must be an int >= 1, got 0"),
    (lambda: RealNVP(depth=1.5), ValueError, "depth must be an int >= 1, got 1.5"),
    (lambda: MAF(dim=0), ValueError, "dim must be an int >= 1, got 0"),
    (lambda: nf.AffineCoupling(torch.ones(2)), ValueError, "mask must hold both 0 .* and 1"),
    (lambda: nf.AffineCoupling(torch.tensor([0, 2])), ValueError, "mask must hold both 0"),
    (lambda: nf.AffineCoupling(torch.ones(2, 2)), TypeError, "mask must be a 1-D tensor"),
    (lambda: nf.AffineCoupling(torch.tensor([0, 1]), bound=0.0), ValueError, "bound must be a finite number > 0"),
    (lambda: nf.AffineCoupling(torch.tensor([0, 1]), hidden=0), ValueError, "hidden must be an int >= 1"),
    (lambda: nf.MaskedAutoregressive(torch.tensor([0, 0])), ValueError, r"order must be a permutation of 0 … 1, got \[0, 0\]"),
    (lambda: nf.MADE(torch.tensor([0.0, 1.0])), TypeError, "order must be a 1-D integer tensor"),
    (lambda: nf.MaskedAutoregressive(torch.tensor([1, 0]), bound=-1.0), ValueError, "bound must be a finite number > 0"),
    (lambda: nf.SplineCoupling(torch.tensor([1, 1])), ValueError, "mask must hold both 0"),
    (lambda: nf.SplineCoupling(torch.tensor([0, 1]), bins=0), ValueError, "bins must be an int >= 1, got 0"),
    (lambda: nf.SplineCoupling(torch.tensor([0, 1]), bound=float("inf")), ValueError, "bound must be a finite number > 0"),
    (lambda: TARFlow(tokens=0), ValueError, "tokens must be an int >= 1, got 0"),
    (lambda: TARFlow(tokens=4, blocks=0), ValueError, "blocks must be an int >= 1, got 0"),
    (lambda: TARFlow(tokens=4, heads=0), ValueError, "heads must be an int >= 1, got 0"),
    (lambda: TARFlow(tokens=4, width=16).decode(torch.zeros(2, 4, 2), tol=-1.0), ValueError, "tol must be a finite number >= 0"),
    (lambda: TARFlow(tokens=4, width=16).decode(torch.zeros(2, 4, 2), max_iterations=0), ValueError,
     "max_iterations must be an int >= 1, got 0"),
    (lambda: nf.AutoregressiveBlock(4, 2, 16, 1, 2, reverse="yes"), TypeError, "reverse must be True or False"),
    (lambda: nf.AutoregressiveBlock(4, 2, 16, 1, 2, reverse=False, bound=0), ValueError, "bound must be a finite number > 0"),
    (lambda: nf.CausalTransformer(4, 2, width=10, heads=4), ValueError, "width must be divisible by heads"),
    (lambda: nf.CausalTransformer(4, 2, layers=0), ValueError, "layers must be an int >= 1, got 0"),
    (lambda: nf.deep_shallow(4, shallow=-1), ValueError, "shallow must be an int >= 0, got -1"),
    (lambda: nf.deep_shallow(4, deep_layers=0), ValueError, "deep_layers must be an int >= 1, got 0"),
    (lambda: RealNVP().sample(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: RealNVP().denoise(torch.zeros(2, 2), noise=float("nan")), ValueError, "noise must be a finite number >= 0"),
    (lambda: MaximumLikelihood("moons"), TypeError, "data must draw points: a data.Distribution, .* got str"),
    (lambda: MaximumLikelihood(_NoMarker()), TypeError, "data must draw points: .* draws_points = True"),
    (lambda: MaximumLikelihood(data.get("moons"), batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: MaximumLikelihood(data.get("moons"), noise=float("inf")), ValueError, "noise must be a finite number >= 0"),
    (lambda: nf.Denoising(3, noise=0.1), TypeError, "data must draw points"),
    (lambda: nf.Denoising(Curves(), noise=0.1, batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
    (lambda: nf.Denoiser(tokens=0), ValueError, "tokens must be an int >= 1, got 0"),
    (lambda: nf.Denoiser(tokens=4, depth=0), ValueError, "depth must be an int >= 1, got 0"),
    (lambda: Curves(noise=-0.1), ValueError, "noise must be a finite number >= 0, got -0.1"),
    (lambda: Curves(kinds="arc"), TypeError, "kinds must be a tuple of names"),
    (lambda: Curves(kinds=()), ValueError, "kinds must be a non-empty selection"),
    (lambda: Curves(length=2.0), ValueError, "length must be an int >= 2, got 2.0"),
    (lambda: Curves().sample(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: nf.Wander(length=0), ValueError, "length must be an int >= 1, got 0"),
    (lambda: nf.Wander(rho=-0.1), ValueError, "rho must be a finite number >= 0 and < 1"),
    (lambda: nf.Wander().sample(1.0), ValueError, "n must be an int >= 1, got 1.0"),
]


@pytest.mark.parametrize("make, error, message", BAD_NF_INPUT, ids=range(len(BAD_NF_INPUT)))
def test_every_bad_argument_of_nf_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
