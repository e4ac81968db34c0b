import math

import pytest
import torch

import toyflow
from toyflow.train import ema_decay, fit, schedule_factor


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
    (dict(steps=0), ValueError, "steps must be an int >= 1, got 0"),
    (dict(steps=2.5), ValueError, "steps must be an int >= 1, got 2.5"),
    (dict(steps=None), ValueError, "steps is None and max_seconds is None: give a number of steps, a time budget"),
    (dict(max_seconds=0), ValueError, "max_seconds must be a finite number > 0 .* got 0"),
    (dict(max_seconds=-1.0), ValueError, "max_seconds must be a finite number > 0 .* got -1.0"),
    (dict(max_seconds=float("inf")), ValueError, "max_seconds must be a finite number .* got inf"),
    (dict(max_seconds=float("nan")), ValueError, "max_seconds must be a finite number .* got nan"),
    (dict(max_seconds="5"), ValueError, "max_seconds must be a finite number .* got '5'"),
    (dict(max_seconds=True), ValueError, "max_seconds must be a finite number .* got True"),
    (dict(clock="now"), TypeError, "clock must be a callable returning seconds, such as time.perf_counter, got 'now'"),
    (dict(lr=-1), ValueError, "lr must be a finite number > 0, got -1"),
    (dict(lr=float("nan")), ValueError, "lr must be a finite number > 0, got nan"),
    (dict(schedule="linear"), ValueError, r"schedule must be one of \['cosine', 'constant'\], got 'linear'"),
    (dict(ema=1.5), ValueError, "ema must be a finite number > 0 and < 1"),
    (dict(ema=0), ValueError, "ema must be a finite number > 0 and < 1"),
    (dict(grad_clip=0), ValueError, r"grad_clip must be a finite number > 0 \(or None .* got 0"),
    (dict(grad_clip=-1.0), ValueError, r"grad_clip must be a finite number > 0 \(or None .* got -1.0"),
    (dict(check_every=0), ValueError, "check_every must be an int >= 1, got 0"),
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
    with pytest.raises(ValueError, match="window must be an int >= 1, got 0"):
        toyflow.train.History([1.0, 2.0]).smoothed(0)
    with pytest.raises(ValueError, match="holds no loss yet"):
        toyflow.train.History().smoothed()


class FakeClock:
    """A clock that only moves when a step says so: tests never depend on the machine's speed."""

    def __init__(self):
        self.now = 100.0  # any start: fit measures differences

    def __call__(self) -> float:
        return self.now


def _timed(clock: FakeClock, costs, objective=_regression):
    """``objective`` that advances ``clock`` by the next of ``costs`` (seconds, cycled) at each step."""
    costs, calls = list(costs), []

    def timed(model, generator):
        clock.now += costs[len(calls) % len(costs)]
        calls.append(clock.now)
        return objective(model, generator)

    return timed


@pytest.mark.parametrize(
    "costs, max_seconds, steps, done, seconds",
    [
        ([0.25], 2.0, None, 8, 2.0),  # 8 steps of 0.25 s fill 2 s exactly
        ([0.5, 1.5, 0.25], 2.0, None, 2, 2.0),  # the clock reads 2.0 before step 3: stop
        ([0.5, 1.5, 0.25], 2.1, None, 3, 2.25),  # it reads 2.0 < 2.1: one more step, overshooting by < one step
        ([0.25], 100.0, 5, 5, 1.25),  # steps is an upper bound
    ],
)
def test_a_time_budget_stops_at_the_first_step_that_finds_it_spent(costs, max_seconds, steps, done, seconds):
    clock = FakeClock()
    history = fit(torch.nn.Linear(1, 1), _timed(clock, costs), steps, max_seconds=max_seconds, clock=clock,
                  progress=False, check_every=3)
    assert history.steps == len(history.loss) == done
    assert history.seconds == seconds


def _lr_per_step(clock: FakeClock, costs, **options) -> list[float]:
    """The learning rate of every step, read off the weight: Adam moves a weight whose gradient is a
    constant 1 by lr·(1 − 1e-8) a step."""
    model, seen = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64), []  # float64: exact differences

    def objective(model, generator):
        seen.append(model.weight.item())
        return model.weight.sum()

    fit(model, _timed(clock, costs, objective), lr=0.01, progress=False, clock=clock, **options)
    weights = seen + [model.weight.item()]
    return [a - b for a, b in zip(weights, weights[1:])]


def test_the_schedule_follows_elapsed_time_as_it_would_follow_steps():
    """At elapsed fraction f of the budget the learning rate is the step schedule's at fraction f."""
    by_steps = _lr_per_step(FakeClock(), [0.25], steps=40)
    by_time = _lr_per_step(FakeClock(), [0.25], steps=None, max_seconds=10.0)  # 40 steps of 0.25 s
    assert len(by_time) == len(by_steps) == 40
    assert by_time == pytest.approx(by_steps, rel=1e-6)
    assert by_steps == pytest.approx([0.01 * schedule_factor("cosine", i, 40) for i in range(40)], rel=1e-6)

    clock, costs = FakeClock(), [0.125, 0.75, 0.375]  # uneven steps: the schedule reads the clock, not the count
    uneven = _lr_per_step(clock, costs, steps=None, max_seconds=5.0)
    elapsed, now = [], 0.0  # the clock's reading before each step that runs
    while now < 5.0:
        elapsed.append(now)
        now += costs[(len(elapsed) - 1) % 3]
    assert len(uneven) == len(elapsed) == 12
    assert uneven == pytest.approx([0.01 * schedule_factor("cosine", e, 5.0) for e in elapsed], rel=1e-6)


def test_both_budgets_the_one_spent_first_drives_the_schedule():
    """10 s at 0.25 s a step is 40 steps; with steps=20 the step budget runs out first and drives the schedule."""
    capped = _lr_per_step(FakeClock(), [0.25], steps=20, max_seconds=10.0)
    assert capped == pytest.approx(_lr_per_step(FakeClock(), [0.25], steps=20), rel=1e-6)


def test_a_time_budget_trains_the_same_model_as_the_same_number_of_steps_with_ema():
    def trained(**budget):
        toyflow.seed(0)
        model, clock = torch.nn.Linear(1, 1), FakeClock()
        fit(model, _timed(clock, [0.5]), lr=0.05, ema=0.9, progress=False, clock=clock, **budget)
        return model

    by_steps, by_time = trained(steps=200), trained(steps=None, max_seconds=100.0)
    torch.testing.assert_close(by_time.weight, by_steps.weight, rtol=1e-5, atol=1e-6)


def test_a_nan_loss_in_the_last_steps_of_a_time_budget_names_the_step():
    clock, calls = FakeClock(), []

    def objective(model, generator):
        calls.append(1)
        loss = _regression(model, generator)
        return loss * float("nan") if len(calls) == 19 else loss  # step 18 of 20, after the last check at 10

    with pytest.raises(FloatingPointError, match="loss became nan at step 18:"):
        fit(torch.nn.Linear(1, 1), _timed(clock, [0.5], objective), None, max_seconds=10.0, clock=clock,
            progress=False, check_every=10)


def test_the_progress_bar_counts_seconds_under_a_time_budget(capsys):
    clock = FakeClock()
    history = fit(torch.nn.Linear(1, 1), _timed(clock, [0.25]), None, max_seconds=2.0, clock=clock,
                  progress=True, description="timed")
    assert history.steps == 8
    err = capsys.readouterr().err
    assert "timed:" in err and "/2 s" in err
