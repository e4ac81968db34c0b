import pytest
import torch

import toyflow
from toyflow.train import fit


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


def test_bad_options():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        fit(model, _regression, steps=0)
    with pytest.raises(ValueError, match="lr must be > 0, got -1"):
        fit(model, _regression, lr=-1)
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'constant', got 'linear'"):
        fit(model, _regression, schedule="linear")
    with pytest.raises(ValueError, match="ema must be in"):
        fit(model, _regression, ema=1.5)
