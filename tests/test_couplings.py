import warnings

import numpy as np
import pytest
import torch

from toyflow import couplings, data, pairs, transport
from toyflow.metrics import transport_cost


def _batches(seed: int, n: int = 128):
    g = torch.Generator().manual_seed(seed)
    return data.get("8gaussians").sample(n, g), data.get("moons").sample(n, g)


def _same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    key = lambda x: x[torch.argsort(x[:, 0] * 1e4 + x[:, 1])]  # noqa: E731
    return torch.equal(key(a), key(b))


@pytest.mark.parametrize("seed", range(5))
def test_exact_ot_never_raises_the_cost_and_keeps_both_marginals(seed):
    x0, x1 = _batches(seed)
    pairs = couplings.ExactOT()(x0, x1)
    assert torch.equal(pairs.x0, x0)
    assert _same_rows(pairs.x1, x1)  # a permutation: no point lost or duplicated
    assert transport_cost(pairs.x0, pairs.x1) <= transport_cost(x0, x1)
    shuffled = x1[torch.randperm(len(x1), generator=torch.Generator().manual_seed(seed))]
    assert transport_cost(pairs.x0, pairs.x1) <= transport_cost(x0, shuffled)


def test_exact_ot_in_one_dimension_is_the_monotone_rearrangement():
    x0, x1 = torch.randn(64, 1), 3 * torch.randn(64, 1) + 1
    pairs = couplings.ExactOT()(x0, x1)
    order = torch.argsort(pairs.x0[:, 0])
    assert torch.all(pairs.x1[order, 0].diff() >= 0)


def test_sinkhorn_plan_has_uniform_marginals_and_interpolates_ot_and_independent():
    x0, x1 = _batches(0, 64)
    plan = couplings.SinkhornOT(reg=1.0).plan(x0, x1)
    torch.testing.assert_close(plan.sum(1), torch.full((64,), 1 / 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(0), torch.full((64,), 1 / 64), atol=1e-5, rtol=0)
    cost = couplings.squared_distances(x0, x1)
    exact = transport_cost(x0, couplings.ExactOT()(x0, x1).x1)
    small, large = (float((couplings.SinkhornOT(reg).plan(x0, x1) * cost).sum()) for reg in (0.5, 1000.0))
    assert exact <= small < 1.05 * exact
    assert large == pytest.approx(float(cost.mean()), rel=0.02)


def test_sinkhorn_pairs_keep_the_source_and_draw_partners_from_the_plan():
    x0, x1 = _batches(1, 64)
    pairs = couplings.SinkhornOT(reg=0.5)(x0, x1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pairs.x0, x0)
    assert transport_cost(pairs.x0, pairs.x1) < transport_cost(x0, x1)


def test_sinkhorn_warns_when_it_does_not_converge():
    x0, x1 = _batches(2, 64)
    with pytest.warns(RuntimeWarning, match="increase max_iter or reg"):
        couplings.SinkhornOT(reg=0.01, max_iter=3)(x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        couplings.SinkhornOT(reg=1.0)(x0, x1)


def test_gibbs_weights_favour_close_pairs_and_vanish_for_huge_eps():
    x0, x1 = _batches(3)
    pairs = couplings.GibbsWeighted(eps=1.0)(x0, x1)
    assert pairs.weight.mean().item() == pytest.approx(1.0)
    cost = (x0 - x1).norm(dim=1)
    assert pairs.weight[cost.argmin()] > pairs.weight[cost.argmax()]
    flat = couplings.GibbsWeighted(eps=1e6)(x0, x1).weight
    torch.testing.assert_close(flat, torch.ones_like(flat), atol=1e-4, rtol=0)


def test_marginal_tilt_is_flat_for_huge_eps_and_tilts_inward_for_small_eps():
    x0, x1 = _batches(4, 512)
    tilt0, tilt1 = couplings.GibbsWeighted(eps=1e6).marginal_tilt(x0, x1)
    torch.testing.assert_close(tilt0, torch.ones(512), atol=1e-4, rtol=0)
    _, tilt1 = couplings.GibbsWeighted(eps=0.5).marginal_tilt(x0, x1)
    assert tilt1.mean().item() == pytest.approx(1.0)
    # the moons points closest to the 8 gaussians' ring get more weight than the centre-most ones
    radius = x1.norm(dim=1)
    assert tilt1[radius > radius.quantile(0.8)].mean() > tilt1[radius < radius.quantile(0.2)].mean()


def test_pair_samplers():
    sampler = couplings.PairSampler(data.get("gaussian"), data.get("moons"), couplings.ExactOT())
    batch = sampler.sample(32, torch.Generator().manual_seed(0))
    assert batch.x0.shape == batch.x1.shape == (32, 2)
    z0, z1 = torch.randn(100, 2), torch.randn(100, 2)
    fixed = couplings.FixedPairs(z0, z1).sample(16, torch.Generator().manual_seed(0))
    index = torch.cdist(fixed.x0, z0).argmin(1)
    torch.testing.assert_close(fixed.x1, z1[index])  # pairs stay together


def test_exact_ot_checks_pots_status_and_says_what_to_do():
    x0, x1 = _batches(5, 64)
    with pytest.raises(RuntimeError, match=r"exact OT stopped before the optimal plan .* raise ExactOT\(max_iter=...\)"):
        couplings.ExactOT(max_iter=5)(x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        couplings.ExactOT()(x0, x1)


def test_a_sinkhorn_plan_with_nan_is_an_error_that_says_increase_reg(monkeypatch):
    x0, x1 = _batches(6, 16)
    monkeypatch.setattr(transport.ot, "sinkhorn", lambda a, b, cost, *args, **kwargs: (cost * np.nan, {"err": [0.0]}))
    with pytest.raises(RuntimeError, match="overflowed at reg=1.0 .* increase reg"):
        couplings.SinkhornOT(reg=1.0)(x0, x1)


def test_fixed_pairs_draw_with_a_generator_on_another_device_than_the_pairs():
    z0 = torch.arange(10.0)[:, None].repeat(1, 2)
    pairs = couplings.FixedPairs(z0, z0 + 1)
    batch = pairs.sample(6, torch.Generator().manual_seed(0), device="meta")
    assert batch.x0.device.type == "meta"
    again = pairs.sample(6, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.x1, again.x0 + 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: couplings.SinkhornOT(max_iter=0), "max_iter must be an int >= 1, got 0"),
        (lambda: couplings.SinkhornOT(max_iter=10.5), "max_iter must be an int >= 1, got 10.5"),
        (lambda: couplings.SinkhornOT(tol=0.0), r"tol must be a finite number > 0 .* got 0.0"),
        (lambda: couplings.SinkhornOT(tol=-1e-6), r"tol must be a finite number > 0 .* got -1e-06"),
        (lambda: couplings.ExactOT(max_iter=0), "max_iter must be an int >= 1, got 0"),
        (lambda: couplings.ExactOT(block=0), "block must be an int >= 1, got 0"),
        (lambda: couplings.FixedPairs(torch.zeros(0, 2), torch.zeros(0, 2)), r"z0 must have shape \(n, d\) with n >= 1"),
        (lambda: couplings.FixedPairs(torch.zeros(3, 2), torch.zeros(3, 2)).sample(0), "n must be an int >= 1, got 0"),
        (lambda: couplings.ExactOT()(torch.full((3, 2), float("nan")), torch.zeros(3, 2)), "x0 holds NaN or inf"),
        (lambda: couplings.SinkhornOT()(torch.zeros(3, 2), torch.full((3, 2), float("inf"))), "x1 holds NaN or inf"),
    ],
)
def test_bad_solver_settings_and_points(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _is_optimal(x0: torch.Tensor, x1: torch.Tensor) -> bool:
    """True when exact OT would keep the pairing as it is."""
    return torch.equal(couplings.ExactOT()(x0, x1).x1, x1)


def test_exact_ot_in_blocks_pairs_each_block_optimally_and_keeps_both_marginals():
    x0, x1 = _batches(7, 256)
    pairs = couplings.ExactOT(block=64)(x0, x1)
    assert torch.equal(pairs.x0, x0) and _same_rows(pairs.x1, x1)
    for start in range(0, 256, 64):  # each block is a permutation of its own points, optimally paired
        assert _same_rows(pairs.x1[start:start + 64], x1[start:start + 64])
        assert _is_optimal(x0[start:start + 64], pairs.x1[start:start + 64])
    whole = couplings.ExactOT()(x0, x1)
    assert transport_cost(whole.x0, whole.x1) <= transport_cost(pairs.x0, pairs.x1) < 0.5 * transport_cost(x0, x1)
    assert torch.equal(couplings.ExactOT(block=256)(x0, x1).x1, whole.x1)


def test_prefetching_sampler_returns_optimal_pairs_reproducibly_from_the_first_draws():
    source, target = data.get("8gaussians"), data.get("moons")
    sampler = couplings.PairSampler(source, target, couplings.ExactOT(), prefetch=True)
    first = [sampler.sample(64, torch.Generator().manual_seed(0)) for _ in range(2)]  # a new generator each time
    torch.testing.assert_close(first[0].x0, first[1].x0)  # the prefetched batch of another generator is dropped
    assert torch.equal(first[0].x0, source.sample(64, torch.Generator().manual_seed(0)))  # the draws come first
    g, again = torch.Generator().manual_seed(1), couplings.PairSampler(source, target, couplings.ExactOT(), prefetch=True)
    g2 = torch.Generator().manual_seed(1)
    stream = [sampler.sample(64, g) for _ in range(4)]
    for batch, twin in zip(stream, [again.sample(64, g2) for _ in range(4)]):
        assert torch.equal(batch.x0, twin.x0) and torch.equal(batch.x1, twin.x1)
        assert _is_optimal(batch.x0, batch.x1)
    assert not torch.equal(stream[0].x0, stream[1].x0)
    assert sampler.sample(32, g).x0.shape == (32, 2)  # another size: solved now, not the prefetched one


def test_prefetching_pairs_in_a_background_thread_with_a_generator_of_their_own():
    import threading

    seen = []

    def coupling(x0, x1, generator=None):
        seen.append((threading.current_thread().name, generator))
        return couplings.PairBatch(x0, x1[torch.randperm(len(x1), generator=generator)])

    sampler = couplings.PairSampler(data.get("gaussian"), data.get("moons"), coupling, prefetch=True)
    g = torch.Generator().manual_seed(0)
    sampler.sample(8, g)
    assert all(name.startswith("toyflow-pairs") and own is not g and own is not None for name, own in seen)


def test_bad_input():
    with pytest.raises(ValueError, match="reg must be a finite number > 0"):
        couplings.SinkhornOT(reg=-1.0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        couplings.GibbsWeighted(eps=0.0)
    with pytest.raises(ValueError, match=r"shape \(B, d\), got \(4, 2\) and \(5, 2\)"):
        couplings.ExactOT()(torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"got \(4, 2\) and \(4, 3\)"):
        couplings.FixedPairs(torch.zeros(4, 2), torch.zeros(4, 3))


def test_pair_sampler_names_a_source_that_is_not_a_distribution():
    with pytest.raises(TypeError, match="source must be a distribution .* got 'moons'"):
        couplings.PairSampler("moons", data.get("gaussian"))
    with pytest.raises(TypeError, match="coupling must be a callable"):
        couplings.PairSampler(data.get("moons"), data.get("gaussian"), "ot")


# the split into transport (solvers), couplings (rules) and pairs (batches and samplers) --------------------------


def test_every_public_name_is_still_importable_from_couplings():
    for name in ("PairBatch", "PairSampler", "PairSource", "FixedPairs", "LabelledPairSampler", "Coupling"):
        assert getattr(couplings, name) is getattr(pairs, name)
    assert couplings.squared_distances is transport.squared_distances
    from toyflow.batch import PairSource  # noqa: F401  (batch imports it through couplings)


def test_a_pair_sampler_without_a_coupling_pairs_as_drawn_like_independent():
    source, target = data.get("gaussian"), data.get("moons")
    plain = couplings.PairSampler(source, target).sample(16, torch.Generator().manual_seed(0))
    named = couplings.PairSampler(source, target, couplings.independent).sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(plain.x0, named.x0) and torch.equal(plain.x1, named.x1)


def test_conditional_ot_uses_the_one_exact_solver_and_its_status_check(monkeypatch):
    """C2OT used to solve exact OT on its own, without looking at POT's status: now a cut-short solve raises there too."""
    real = transport.ot.emd

    def cut_short(*args, **kwargs):
        plan, log = real(*args, **kwargs)
        return plan, {**log, "result_code": 3, "warning": "numItermax reached before optimality"}

    monkeypatch.setattr(transport.ot, "emd", cut_short)
    x0, x1 = _batches(8, 16)
    label = torch.arange(16) % 2
    for coupling in (couplings.ConditionalOT(), couplings.ConditionalOT(1.0)):
        with pytest.raises(RuntimeError, match="exact OT stopped before the optimal plan"):
            coupling(x0, x1, label)


def test_c2ot_oversampling_keeps_n_pairs_within_their_class_and_pairs_closer():
    source, target = data.get("gaussian"), data.get("mixture")
    plain = couplings.LabelledPairSampler(source, target, couplings.ConditionalOT())
    over = couplings.LabelledPairSampler(source, target, couplings.ConditionalOT(), oversample=4)
    g = torch.Generator().manual_seed(0)
    batch = over.sample(64, g)
    assert batch.x0.shape == batch.x1.shape == (64, 2) and batch.label.shape == (64,)
    cost = {name: sum(transport_cost(b.x0, b.x1) for b in (s.sample(64, g) for _ in range(10))) / 10
            for name, s in (("plain", plain), ("over", over))}
    assert cost["over"] < cost["plain"], cost  # a larger OT batch per class pairs each noise with a closer target
    again = over.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(again.x0, batch.x0) and torch.equal(again.label, batch.label)


def test_labelled_samplers_follow_the_device_rule():
    """A CPU generator with data asked for elsewhere (meta stands in for CUDA): drawn on the CPU, then moved."""
    for target in (data.get("moons"), data.get("mixture"), data.get("checkerboard")):
        sampler = couplings.LabelledPairSampler(data.get("gaussian"), target, oversample=2)
        batch = sampler.sample(8, torch.Generator().manual_seed(0), device="meta")
        assert batch.x1.device.type == "meta" and batch.label.device.type == "meta"
    x, label = data.get("moons").sample_labelled(8, torch.Generator().manual_seed(0), device="meta")
    assert x.device.type == "meta" and label.device.type == "meta"


def test_one_seed_gives_the_same_sinkhorn_pairs_however_often_it_is_asked():
    x0, x1 = _batches(9, 32)
    first = couplings.SinkhornOT(reg=1.0)(x0, x1, torch.Generator().manual_seed(0))
    second = couplings.SinkhornOT(reg=1.0)(x0, x1, torch.Generator().manual_seed(0))
    assert torch.equal(first.x1, second.x1)


X = torch.zeros(4, 2)
GAUSS, MOONS = data.get("gaussian"), data.get("moons")
LONG = torch.long
BAD_COUPLING_INPUT = [
    (lambda: couplings.ExactOT(max_iter=10.5), ValueError, "max_iter must be an int >= 1, got 10.5"),
    (lambda: couplings.ExactOT(block=True), ValueError, "block must be an int >= 1, got True"),
    (lambda: couplings.SinkhornOT(reg=float("nan")), ValueError, "reg must be a finite number > 0"),
    (lambda: couplings.SinkhornOT(reg="big"), ValueError, "reg must be a finite number > 0 .* got 'big'"),
    (lambda: couplings.SinkhornOT(tol=float("inf")), ValueError, "tol must be a finite number > 0"),
    (lambda: couplings.GibbsWeighted(eps="1"), ValueError, "eps must be a finite number > 0 .* got '1'"),
    (lambda: couplings.GibbsWeighted(eps=-2.0), ValueError, "eps must be a finite number > 0 .* got -2.0"),
    (lambda: couplings.ConditionalOT(weight=-1.0), ValueError, "weight must be a finite number >= 0 .* got -1.0"),
    (lambda: couplings.ConditionalOT(weight=float("nan")), ValueError, "weight must be a finite number >= 0"),
    (lambda: couplings.ConditionalOT(weight="inf"), ValueError, "weight must be a finite number >= 0 .* got 'inf'"),
    (lambda: couplings.ConditionalOT()(X, X, torch.zeros(3, dtype=LONG)), ValueError, r"label must be .* \(4,\), got \(3,\)"),
    (lambda: couplings.ConditionalOT()(X, X, torch.zeros(4)), ValueError, "label must be non-negative integer"),
    (lambda: couplings.ConditionalOT()(X, X, -torch.ones(4, dtype=LONG)), ValueError, "label must be non-negative"),
    (lambda: couplings.ConditionalOT()(X, X, [0, 1, 0, 1]), ValueError, "label must be .* got list"),
    (lambda: couplings.independent(torch.zeros(4, 2), torch.zeros(5, 2)), ValueError, r"got \(4, 2\) and \(5, 2\)"),
    (lambda: couplings.ExactOT()(X.numpy(), X), TypeError, "x0 must be a torch.Tensor"),
    (lambda: couplings.ExactOT()(torch.zeros(4), torch.zeros(4)), ValueError, r"x0 must have shape \(n, d\)"),
    (lambda: couplings.GibbsWeighted()(torch.zeros(4, 2, dtype=LONG), X), TypeError, "x0 must be a floating-point"),
    (lambda: transport.optimal_permutation(X, X, max_iter=0), ValueError, "max_iter must be an int >= 1, got 0"),
    (lambda: transport.sinkhorn_plan(X, X, reg=0.0), ValueError, "reg must be a finite number > 0"),
    (lambda: couplings.PairSampler(MOONS, GAUSS, prefetch="yes"), TypeError, "prefetch must be True or False"),
    (lambda: couplings.PairSampler(MOONS, "gaussian"), TypeError, "target must be a distribution"),
    (lambda: couplings.PairSampler(MOONS, GAUSS).sample(0), ValueError, "n must be an int >= 1, got 0"),
    (lambda: couplings.PairSampler(MOONS, GAUSS, prefetch=True).sample(2.0), ValueError, "n must be an int >= 1"),
    (lambda: couplings.FixedPairs(X.numpy(), X), TypeError, "z0 must be a torch.Tensor"),
    (lambda: couplings.FixedPairs(torch.zeros(4), torch.zeros(4)), ValueError, r"z0 must have shape \(n, d\)"),
    (lambda: couplings.LabelledPairSampler(GAUSS, data.get("circles")), TypeError, "target must have labels"),
    (lambda: couplings.LabelledPairSampler("gaussian", MOONS), TypeError, "source must be a distribution"),
    (lambda: couplings.LabelledPairSampler(GAUSS, MOONS, "ot"), TypeError, "coupling must be a callable"),
    (lambda: couplings.LabelledPairSampler(GAUSS, MOONS, oversample=0), ValueError, "oversample must be an int >= 1, got 0"),
    (lambda: couplings.LabelledPairSampler(GAUSS, MOONS).sample(-1), ValueError, "n must be an int >= 1, got -1"),
]


@pytest.mark.parametrize("make, error, message", BAD_COUPLING_INPUT, ids=range(len(BAD_COUPLING_INPUT)))
def test_every_bad_argument_of_couplings_and_pairs_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
