"""Each checker accepts the reference, names the common mistakes it knows, and reports an unwritten exercise."""

import ot
import torch

from toyflow import exercises, finetune, meanflow, solvers


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


def _distillation_loss(v, z0, z1):
    return (z1 - (z0 + v(z0, torch.zeros(len(z0), dtype=z0.dtype)))).pow(2).mean()


def _nearest_training(x, train):
    """Written without cdist: every squared difference, summed over the coordinates, the smallest, its root."""
    return ((x[:, None, :] - train[None]) ** 2).sum(-1).min(1).values.sqrt()


def _monotone_pairing(x0, x1):
    return x1.sort().values[x0.argsort().argsort()]


def _within_class_pairing(x0, x1, label):
    paired = x1.clone()
    for c in label.unique():
        members = (label == c).nonzero()[:, 0]
        paired[members] = _ot_pairing(x0[members], x1[members])
    return paired


def _clip_blocks(ratio, advantage, clip):
    return ((advantage > 0) & (ratio > 1 + clip)) | ((advantage < 0) & (ratio < 1 - clip))


def _ddim_step_from_velocity(x, x1_hat, t, t_next, alpha, sigma):
    """The reference written another way: toyflow's path step on the path these schedules define, fed the
    velocity α̇·x̂1 + σ̇·x̂0 of the given data prediction (derivatives by autograd)."""
    from toyflow import paths

    def rate(f):
        return lambda s: torch.func.vmap(torch.func.grad(f))(s.reshape(-1)).reshape(s.shape)

    path = paths.Interpolant(alpha=sigma, beta=alpha, d_alpha=rate(sigma), d_beta=rate(alpha))
    time = t.expand(len(x))
    x0_hat = (x - alpha(t) * x1_hat) / sigma(t)
    velocity = path.velocity(x0_hat, x1_hat, time)
    return solvers.path_step(path)(lambda y, s: velocity, x, t, t_next - t)



def _coupling_log_prob(x, mask, conditioner, sign=-1.0, masked_input=True):
    """One affine coupling layer's log-density, written out; ``sign``/``masked_input`` make the common mistakes."""
    shift, log_scale = conditioner(x * mask if masked_input else x)
    moved = 1 - mask
    z = mask * x + moved * (x - shift) * torch.exp(-log_scale)
    return -0.5 * (z**2).sum(1) - torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype)) + sign * (moved * log_scale).sum(1)

CORRECT = [
    (exercises.check_euler_step, solvers.euler_step),
    (exercises.check_heun_step, solvers.heun_step),
    (exercises.check_flow_matching_loss, _flow_matching_loss),
    (exercises.check_ot_pairing, _ot_pairing),
    (exercises.check_reflow_pairs, _reflow_pairs),
    (exercises.check_meanflow_target, meanflow.meanflow_target),
    (exercises.check_meanflow_target, _meanflow_target),
    (exercises.check_ddim_step, _ddim_step_from_velocity),
    (exercises.check_distillation_loss, _distillation_loss),
    (exercises.check_monotone_pairing, _monotone_pairing),
    (exercises.check_within_class_pairing, _within_class_pairing),
    (exercises.check_clip_blocks, _clip_blocks),
    (exercises.check_coupling_log_prob, _coupling_log_prob),
    (exercises.check_nearest_training, _nearest_training),
    (exercises.check_cfg, lambda c, u, w: (1 - w) * u + w * c),
    (exercises.check_endpoint_estimate, lambda x, v, t: x + (1 - t)[:, None] * v),
    (exercises.check_clipped_surrogate, finetune.clipped_surrogate),
    (exercises.check_clipped_surrogate, lambda r, a, c: torch.minimum(r * a, r.clamp(1 - c, 1 + c) * a)),
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
    (exercises.check_ddim_step, lambda x, x1_hat, t, t_next, alpha, sigma: x1_hat, "jump to t = 1"),
    (exercises.check_ddim_step, lambda x, x1_hat, t, t_next, alpha, sigma: alpha(t_next) * x1_hat + sigma(t_next) * (x - x1_hat),
     "forgot its coefficients"),
    (exercises.check_ddim_step, lambda x, x1_hat, t, t_next, alpha, sigma: x + (alpha(t_next) - alpha(t)) * x1_hat,
     "old size"),
    (exercises.check_distillation_loss, lambda v, z0, z1: _distillation_loss(v, z0, z1) * 2, "sums over the coordinates"),
    (exercises.check_distillation_loss,
     lambda v, z0, z1: (z1 - v(z0, torch.zeros(len(z0), dtype=z0.dtype))).pow(2).mean(), "forgets its start"),
    (exercises.check_monotone_pairing, lambda x0, x1: x1.sort().values, "x0 is not sorted"),
    (exercises.check_monotone_pairing, lambda x0, x1: x1.sort(descending=True).values[x0.argsort().argsort()], "reversed"),
    (exercises.check_within_class_pairing, lambda x0, x1, label: x1, "independent coupling"),
    (exercises.check_within_class_pairing, lambda x0, x1, label: _ot_pairing(x0, x1), "ignore the labels"),
    (exercises.check_clip_blocks, lambda r, a, c: (r < 1 - c) | (r > 1 + c), "every ρ outside"),
    (exercises.check_clip_blocks, lambda r, a, c: ~_clip_blocks(r, a, c), "other way round"),
    (exercises.check_coupling_log_prob, lambda x, m, c: _coupling_log_prob(x, m, c, sign=1.0), "wrong sign"),
    (exercises.check_coupling_log_prob, lambda x, m, c: _coupling_log_prob(x, m, c, masked_input=False),
     "read the coordinates it moves"),
    (exercises.check_coupling_log_prob, lambda x, m, c: _coupling_log_prob(x, m, c, sign=0.0), "log-determinant is missing"),
    (exercises.check_nearest_training, lambda x, train: _nearest_training(x, train) ** 2, "squared"),
    (exercises.check_nearest_training, lambda x, train: torch.cdist(x, train).mean(1), "averaged over all training points"),
    (exercises.check_nearest_training, lambda x, train: torch.cdist(x, train).min(0).values, "one distance per training point"),
    (exercises.check_nearest_training, lambda x, train: (x[:, None] - train).abs().sum(-1).min(1).values, "L1"),
    (exercises.check_nearest_training, lambda x, train: torch.cdist(x, train).min(1).indices, "index"),
    (exercises.check_cfg, lambda c, u, w: c + w * (u - c), "roles are swapped"),
    (exercises.check_cfg, lambda c, u, w: w * c, "only the conditional"),
    (exercises.check_endpoint_estimate, lambda x, v, t: x + t[:, None] * v, "uses t"),
    (exercises.check_endpoint_estimate, lambda x, v, t: x + v, "forgets the time left"),
    (exercises.check_clipped_surrogate, lambda r, a, c: r * a, "no clipping"),
    (exercises.check_clipped_surrogate, lambda r, a, c: torch.maximum(r * a, r.clamp(1 - c, 1 + c) * a), "max"),
    (exercises.check_clipped_surrogate, lambda r, a, c: (r * a)[:3], "expected shape (32,)"),
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


# --- notebooks 00–02: W2 in 1D by sorting, the Gaussian marginal velocity, straightness from a path ---


def _w2_1d(a, b):
    return (a.sort().values - b.sort().values).pow(2).mean().sqrt()


def _straightness(path, grid):
    dt = grid.diff()
    velocity = path.diff(dim=0) / dt[:, None, None]
    return sum(h * ((path[-1] - path[0]) - u).pow(2).sum(-1).mean() for h, u in zip(dt, velocity))


def test_fundamentals_references_agree_with_the_library():
    from toyflow import closed_form, metrics

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, generator=g, dtype=torch.float64), torch.rand(40, generator=g, dtype=torch.float64)
    assert abs(_w2_1d(a, b).item() - metrics.w2(a[:, None], b[:, None])) < 1e-9
    case = closed_form.GaussianToGaussian(mean=(1.0, -2.0), std=0.4)
    x, t = torch.randn(10, 2, generator=g, dtype=torch.float64), torch.rand(10, generator=g, dtype=torch.float64)
    zero, m = torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert torch.allclose(exercises.gaussian_velocity(x, t, zero, 1.0, m, 0.4), case.velocity(x, t))
    x0 = torch.randn(50, 2, generator=g, dtype=torch.float64)
    path = solvers.integrate(case.velocity, x0, 40, return_path=True)
    assert abs(exercises.straightness_of_path(path.path, path.grid).item() - metrics.straightness(case.velocity, x0, 40)) < 1e-9
    straight = x0 + torch.linspace(0, 1, 11, dtype=torch.float64)[:, None, None] * torch.tensor([3.0, -1.0], dtype=torch.float64)
    assert exercises.straightness_of_path(straight, torch.linspace(0, 1, 11, dtype=torch.float64)).abs() < 1e-12


def test_fundamentals_checkers(capsys):
    def sorted_gaps(a, b):
        return a.sort().values - b.sort().values

    correct = [
        (exercises.check_w2_1d, _w2_1d),
        (exercises.check_w2_1d, lambda a, b: float(_w2_1d(a, b))),  # a Python float is fine too
        (exercises.check_gaussian_velocity, exercises.gaussian_velocity),
        (exercises.check_straightness, _straightness),
        (exercises.check_straightness, exercises.straightness_of_path),
    ]
    for checker, function in correct:
        passed, out = _verdict(capsys, checker, function)
        assert passed and "correct" in out, out
    mistakes = [
        (exercises.check_w2_1d, lambda a, b: (a - b).pow(2).mean().sqrt(), "sort both samples"),
        (exercises.check_w2_1d, lambda a, b: sorted_gaps(a, b).pow(2).mean(), "this is W2²"),
        (exercises.check_w2_1d, lambda a, b: sorted_gaps(a, b).pow(2).sum().sqrt(), "summed"),
        (exercises.check_w2_1d, lambda a, b: sorted_gaps(a, b).abs().mean(), "W1"),
        (exercises.check_gaussian_velocity, lambda x, t, a, r, m, s: (m - a).expand_as(x).clone(),
         "straight line between the means"),
        (exercises.check_gaussian_velocity,
         lambda x, t, a, r, m, s: exercises.gaussian_velocity(x, t, torch.zeros_like(a), 1.0, m, s), "N(0, I)"),
        (exercises.check_gaussian_velocity,
         lambda x, t, a, r, m, s: 2 * (m - a) - exercises.gaussian_velocity(x, t, a, r, m, s), "wrong sign"),
        (exercises.check_straightness, lambda p, g: _straightness(p, g) / 2, "averaged over the coordinates"),
        (exercises.check_straightness,
         lambda p, g: ((p[-1] - p[0]) - p.diff(dim=0) / g.diff()[:, None, None]).pow(2).sum(-1).mean(), "same weight"),
        (exercises.check_straightness,
         lambda p, g: sum(h * ((p[-1] - p[0]) - u).pow(2).sum(-1).mean() for h, u in zip(g.diff(), p.diff(dim=0))),
         "divide z_{i+1} − z_i"),
    ]
    for checker, function, words in mistakes:
        passed, out = _verdict(capsys, checker, function)
        assert not passed and words in out, (checker.__name__, out)
    for checker in (exercises.check_w2_1d, exercises.check_gaussian_velocity, exercises.check_straightness):
        passed, out = _verdict(capsys, checker, lambda *args: (_ for _ in ()).throw(NotImplementedError))
        assert not passed and "not written yet" in out, out


# --- notebook 11: the score of the linear path from N(0, σ²I) ---


def test_scaled_score_is_the_exact_gaussian_score_and_its_checker_names_mistakes(capsys):
    # the reference against the closed-form score of p_t = N(t·m, ((1 − t)²σ² + t²s²) I)
    g = torch.Generator().manual_seed(0)
    sigma, s, m = 1.7, 0.6, torch.tensor([1.0, -2.0], dtype=torch.float64)
    x, t = 2 * torch.randn(20, 2, generator=g, dtype=torch.float64), 0.9 * torch.rand(20, generator=g, dtype=torch.float64)
    col = t[:, None]
    variance = (1 - col) ** 2 * sigma**2 + col**2 * s**2
    velocity = m + (col * s**2 - (1 - col) * sigma**2) / variance * (x - col * m)
    assert torch.allclose(exercises.scaled_score(velocity, x, t, sigma), -(x - col * m) / variance)
    passed, out = _verdict(capsys, exercises.check_scaled_score, exercises.scaled_score)
    assert passed and "correct" in out, out
    mistakes = [
        (lambda v, x, t, sigma: (t[:, None] * v - x) / (1 - t[:, None]), "σ is ignored"),
        (lambda v, x, t, sigma: (t[:, None] * v - x) / ((1 - t[:, None]) * sigma), "divided by σ, not σ²"),
        (lambda v, x, t, sigma: (t[:, None] * v - x) / (1 - t[:, None]) * sigma**2, "multiplies instead"),
        (lambda v, x, t, sigma: (t[:, None] * v - x) / ((1 - t[:, None]) ** 2 * sigma**2), "one factor 1 − t cancels"),
    ]
    for function, words in mistakes:
        passed, out = _verdict(capsys, exercises.check_scaled_score, function)
        assert not passed and words in out, out


# --- the package: every name the notebooks call, one-way imports, no global random state touched ---


def test_every_name_the_notebooks_use_exists():
    import re
    from pathlib import Path

    notebooks = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
    used = {name for path in notebooks for name in re.findall(r"exercises\.([A-Za-z_0-9]+)", path.read_text())}
    assert notebooks and used, "no notebook calls a checker"
    assert not [name for name in used if not hasattr(exercises, name)]
    assert not [name for name in exercises.__all__ if not hasattr(exercises, name)]


def test_topic_modules_import_the_shared_machinery_never_each_other():
    import ast
    from pathlib import Path

    package = Path(exercises.__file__).parent
    topics = {path.stem for path in package.glob("*.py")} - {"__init__", "_check"}
    assert len(topics) >= 5, topics
    for topic in topics:
        tree = ast.parse((package / f"{topic}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert imported <= {"_check"}, (topic, imported)


def test_checkers_leave_the_global_random_state_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert exercises.check_meanflow_target(meanflow.meanflow_target)  # builds a network from a seed of its own
    assert exercises.check_latent_sample(lambda v, decoder, z0, steps: decoder(solvers.integrate(v, z0, steps).x))
    assert exercises.check_jacobi_step(lambda params, z, x: z * params(x)[1].exp() + params(x)[0])
    assert torch.equal(torch.rand(3), expected)
    first = capsys.readouterr().out
    exercises.check_meanflow_target(meanflow.meanflow_target)
    assert capsys.readouterr().out in first  # the same cases every time


def test_every_checker_reports_an_unwritten_exercise(capsys):
    def stub(*args):
        raise NotImplementedError

    checkers = [name for name in exercises.__all__ if name.startswith("check_")]
    assert len(checkers) >= 25
    for name in checkers:
        passed, out = _verdict(capsys, getattr(exercises, name), stub)
        assert not passed and out.startswith(f"{name}: not written yet") and out.count("\n") == 1, out
