import math

import pytest
import torch

import toyflow
from toyflow.train import ema_decay, fit


def _regression(model, generator):
    x = torch.randn(64, 1, generator=generator)
    return ((model(x) - (3 * x - 1)) ** 2).mean()


def _trained(seed: int, **options) -> torch.nn.Linear:
    toyflow.seed(seed)
    model = torch.nn.Linear(1, 1)
    fit(model, _regression, steps=200, lr=0.05, progress=False, seed=seed, **options)
    return model


def test_fit_minimises_the_objective_and_records_every_step():
    toyflow.seed(0)
    model = torch.nn.Linear(1, 1)
    history = fit(model, _regression, steps=400, lr=0.05, progress=False)
    assert len(history.loss) == history.steps == 400
    assert history.loss[-1] < 1e-4 < history.loss[0]
    assert model.weight.item() == pytest.approx(3.0, abs=1e-2)
    assert len(history.smoothed(50)) == 351


def test_the_same_seed_reproduces_the_same_weights_on_cpu():
    a, b, c = _trained(0), _trained(0), _trained(1)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)


def test_ema_leaves_the_average_in_the_model():
    plain, averaged = _trained(0, schedule="constant"), _trained(0, schedule="constant", ema=0.9)
    assert not torch.equal(plain.weight, averaged.weight)
    assert averaged.weight.item() == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("bad_step", [0, 7, 63])
def test_a_nan_loss_stops_training_and_names_the_step(bad_step):
    model = torch.nn.Linear(1, 1)
    calls = []

    def objective(model, generator):
        calls.append(1)
        loss = _regression(model, generator)
        return loss * float("nan") if len(calls) - 1 == bad_step else loss

    with pytest.raises(FloatingPointError, match=f"loss became nan at step {bad_step}:"):
        fit(model, objective, steps=100, progress=False, check_every=50)


def test_ema_warms_up_so_a_short_run_forgets_the_initialisation():
    """With a constant decay of 0.999 the average of a 200-step run would still be 82% its random start."""
    plain, averaged = _trained(0, schedule="constant"), _trained(0, schedule="constant", ema=0.999)
    assert averaged.weight.item() == pytest.approx(plain.weight.item(), abs=0.05)
    kept = math.prod(ema_decay(0.999, step) for step in range(200))  # the initial weights' share of the average
    assert kept < 1e-12 and ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999


def test_ema_average_is_the_warmed_up_recursion():
    """One parameter moved by a known sequence of steps: the averaged value equals the recursion by hand."""
    toyflow.seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    seen = []

    def objective(model, generator):
        seen.append(model.weight.item())
        return model.weight.sum()  # Adam with a constant lr moves the weight by −lr every step

    fit(model, objective, steps=5, lr=0.1, schedule="constant", ema=0.5, progress=False)
    weights = seen[1:] + [seen[-1] - 0.1]  # the weight after each of the 5 steps
    average = seen[0]
    for step, w in enumerate(weights):
        average += (1 - ema_decay(0.5, step)) * (w - average)
    assert model.weight.item() == pytest.approx(average, abs=1e-6)


def _function_objective(generator):
    return torch.zeros(())


BAD_OPTIONS = [
    (dict(steps=0), ValueError, "steps must be a positive int, got 0"),
    (dict(steps=2.5), ValueError, "steps must be a positive int, got 2.5"),
    (dict(lr=-1), ValueError, "lr must be a finite number > 0, got -1"),
    (dict(lr=float("nan")), ValueError, "lr must be a finite number > 0, got nan"),
    (dict(schedule="linear"), ValueError, "schedule must be 'cosine' or 'constant', got 'linear'"),
    (dict(ema=1.5), ValueError, "ema must be in"),
    (dict(ema=0), ValueError, "ema must be in"),
    (dict(grad_clip=0), ValueError, "grad_clip must be a finite number > 0 or None .* got 0"),
    (dict(grad_clip=-1.0), ValueError, "grad_clip must be a finite number > 0 or None .* got -1.0"),
    (dict(check_every=0), ValueError, "check_every must be a positive int .* got 0"),
    (dict(seed=1.5), TypeError, "seed must be an int, got 1.5"),
    (dict(objective=_function_objective), TypeError, "objective must take two arguments"),
    (dict(objective="l2"), TypeError, "objective must be a callable"),
    (dict(objective=lambda model, generator: torch.ones(())), ValueError, "does not depend on the model's parameters"),
    (dict(objective=lambda model, generator: model(torch.ones(3, 1))), TypeError, r"scalar loss tensor, got \(3, 1\)"),
    (dict(model=lambda x: x), TypeError, "model must be a torch.nn.Module"),
    (dict(model=torch.nn.ReLU()), ValueError, "model has no parameters"),
]


@pytest.mark.parametrize("options, error, message", BAD_OPTIONS)
def test_bad_options_name_the_argument(options, error, message):
    arguments = {"model": torch.nn.Linear(1, 1), "objective": _regression, **options}
    with pytest.raises(error, match=message):
        fit(arguments.pop("model"), arguments.pop("objective"), progress=False, **{"steps": 3, **arguments})


def test_smoothed_names_a_bad_window():
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        toyflow.train.History([1.0, 2.0]).smoothed(0)
    with pytest.raises(ValueError, match="holds no loss yet"):
        toyflow.train.History().smoothed()
