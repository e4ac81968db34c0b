"""The one training loop of toyflow: every method is an objective, ``fit`` minimises it.

An objective is any callable ``objective(model, generator) -> scalar loss`` that draws its
own batch with ``generator`` (see :class:`toyflow.flow_matching.FlowMatching`).

>>> import toyflow
>>> toyflow.seed(0)
>>> model = torch.nn.Linear(1, 1)
>>> def objective(model, generator):  # fit y = 2x
...     x = torch.randn(64, 1, generator=generator)
...     return ((model(x) - 2 * x) ** 2).mean()
>>> history = fit(model, objective, steps=300, lr=0.05, progress=False)
>>> round(model.weight.item(), 2)
2.0

A time budget instead of a step count: ``fit(model, objective, steps=None, max_seconds=5.0)`` trains
for five seconds, and its learning-rate schedule follows the clock, so it ends decayed exactly then.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._base import check_choice, check_int, check_number

Objective = Callable[[nn.Module, torch.Generator], Tensor]


@dataclass
class History:
    """What ``fit`` measured: the loss of every step, the wall time (seconds) and the number of steps done."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0

    def smoothed(self, window: int = 100) -> list[float]:
        """Running mean of the loss over ``window`` steps, for plots."""
        check_int("window", window)
        if not self.loss:
            raise ValueError("the history holds no loss yet: train first")
        loss = torch.tensor(self.loss)
        kernel = torch.ones(1, 1, min(window, len(loss))) / min(window, len(loss))
        return torch.conv1d(loss[None, None], kernel)[0, 0].tolist()


def ema_decay(ema: float, step: int) -> float:
    """The EMA decay at optimiser step ``step`` (0, 1, …): ``min(ema, (1 + step)/(10 + step))``.

    The warm-up (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) keeps a share
    ``Π_k (1 + k)/(10 + k) = 9!·s!/(s + 9)!`` of the initial weights after ``s`` steps: about 1e-5 after
    10 steps, whereas a constant 0.999 keeps ``0.999^s``: 0.37 after 1,000 steps, 0.14 after 2,000.

    >>> [round(ema_decay(0.999, s), 3) for s in (0, 10, 1000, 100_000)]
    [0.1, 0.55, 0.991, 0.999]
    """
    return min(ema, (1 + step) / (10 + step))


def budget_spent(step: int, elapsed: float, steps: int | None, max_seconds: float | None) -> tuple[float, float]:
    """``(spent, budget)`` of the budget that is further spent: ``(step, steps)`` or ``(elapsed, max_seconds)``.

    Training stops when ``spent >= budget``, and the learning-rate schedule reads ``spent / budget``.
    With a time budget the schedule therefore follows the clock and ends exactly when the time is up,
    however fast the machine is; with both budgets, the one that runs out first drives it.

    >>> budget_spent(step=500, elapsed=3.0, steps=1000, max_seconds=10.0)
    (500, 1000)
    >>> budget_spent(step=500, elapsed=6.0, steps=1000, max_seconds=10.0)
    (6.0, 10.0)
    """
    budgets = [] if steps is None else [(step, steps)]
    if max_seconds is not None:
        budgets.append((elapsed, max_seconds))
    return max(budgets, key=lambda budget: budget[0] / budget[1])


def schedule_factor(schedule: str, spent: float, budget: float) -> float:
    """The learning rate's share of its peak once ``spent`` of ``budget`` (steps or seconds) is used:
    ``(1 + cos(π·spent/budget))/2`` for ``"cosine"``, 1 for ``"constant"``.

    >>> schedule_factor("cosine", 0, 10), schedule_factor("cosine", 5, 10), schedule_factor("constant", 5, 10)
    (1.0, 0.5, 1.0)
    """
    return 0.5 * (1 + math.cos(math.pi * spent / budget)) if schedule == "cosine" else 1.0


def _check_objective(objective: object) -> None:
    if not callable(objective):
        raise TypeError(f"objective must be a callable objective(model, generator) -> loss, got {type(objective).__name__}")
    try:
        inspect.signature(objective).bind(None, None)
    except TypeError:
        raise TypeError(
            f"objective must take two arguments, objective(model, generator) -> loss; {objective!r} does not: "
            "wrap it, e.g. lambda model, generator: ..."
        ) from None
    except ValueError:  # builtins without a signature: let the first call tell
        pass


def fit(
    model: nn.Module,
    objective: Objective,
    steps: int | None = 2000,
    *,
    max_seconds: float | None = None,
    lr: float = 1e-3,
    schedule: str = "cosine",
    ema: float | None = None,
    grad_clip: float | None = None,
    seed: int = 0,
    progress: bool = True,
    description: str = "training",
    check_every: int = 50,
    clock: Callable[[], float] = time.perf_counter,
) -> History:
    """Minimise ``objective(model, generator)`` with Adam for ``steps`` steps or ``max_seconds`` seconds;
    return the history.

    Args:
        model: trained in place. With ``ema``, it ends holding the averaged weights.
        objective: ``(model, generator) -> loss``; the generator is a CPU generator seeded with ``seed``
            (the device rule draws on it and moves the numbers), so a run is reproducible on any device.
        steps: number of optimiser steps; with ``max_seconds``, an upper bound. The default 2000
            caps a time budget too: pass ``steps=None`` to train until the time is up.
        max_seconds: a wall-time budget (> 0) instead of, or on top of, ``steps``. Before each step
            ``fit`` reads the clock and stops at the first step that finds the budget spent, so a run
            overshoots by at most one step. The schedule follows elapsed time,
            ``lr · schedule(elapsed / max_seconds)`` (:func:`budget_spent`); the history records the
            seconds and the steps done.
        lr: peak learning rate.
        schedule: ``"cosine"`` (decay to 0, usually the better final model) or ``"constant"``.
        ema: decay of an exponential moving average of the weights, e.g. 0.999; None for none.
            It warms up (:func:`ema_decay`), so a short run does not keep its random initialisation.
        grad_clip: clip the gradient norm to this value (> 0); None for no clipping.
        seed: seed of the generator handed to the objective.
        progress: show a ``tqdm`` progress bar with the running loss.
        check_every: how often (in steps) the loss is copied to the host and checked; a NaN or
            inf stops training with a ``FloatingPointError`` naming the first bad step.
        clock: the function that tells the time in seconds (tests pass a fake one).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (trained in place), got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError(f"model has no parameters to train: {type(model).__name__}")
    _check_objective(objective)
    if steps is not None:
        check_int("steps", steps)
    if max_seconds is not None:
        check_number("max_seconds", max_seconds, low=0, low_open=True, why="a time budget; None for none")
    if steps is None and max_seconds is None:
        raise ValueError("steps is None and max_seconds is None: give a number of steps, a time budget max_seconds, or both")
    if not callable(clock):
        raise TypeError(f"clock must be a callable returning seconds, such as time.perf_counter, got {clock!r}")
    check_number("lr", lr, low=0, low_open=True)
    check_choice("schedule", schedule, ("cosine", "constant"))
    if ema is not None:
        check_number("ema", ema, low=0, high=1, low_open=True, high_open=True, why="or None for no averaging")
    if grad_clip is not None:
        check_number("grad_clip", grad_clip, low=0, low_open=True, why="or None for no clipping")
    check_int("check_every", check_every)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")

    generator = torch.Generator().manual_seed(int(seed))  # on the CPU: the same run on any device (the device rule)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    averaged = copy.deepcopy(model).requires_grad_(False) if ema is not None else None

    history, pending = History(), []
    bar = _progress_bar(steps, max_seconds, description, progress)
    model.train()
    step, start = 0, clock()
    while True:
        elapsed = clock() - start
        bar.update((step if max_seconds is None else elapsed) - bar.n)  # the bar counts steps, or seconds
        spent, budget = budget_spent(step, elapsed, steps, max_seconds)
        if spent >= budget:
            break
        for group in optimizer.param_groups:  # the schedule follows the budget: steps, or seconds on the clock
            group["lr"] = lr * schedule_factor(schedule, spent, budget)
        loss = objective(model, generator)
        if step == 0:
            _check_loss(loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if averaged is not None:
            with torch.no_grad():
                for avg, new in zip(averaged.parameters(), model.parameters()):
                    avg.lerp_(new, 1 - ema_decay(ema, step))
        pending.append(loss.detach())
        step += 1
        if len(pending) == check_every:
            _record(history, pending, first_step=step - len(pending))
            pending = []
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    if pending:
        _record(history, pending, first_step=step - len(pending))
    bar.close()
    if averaged is not None:  # the averaged weights; buffers stay the trained model's own
        with torch.no_grad():
            for trained, average in zip(model.parameters(), averaged.parameters()):
                trained.copy_(average)
    model.eval()
    history.seconds = clock() - start
    history.steps = step
    return history


def _progress_bar(steps: int | None, max_seconds: float | None, description: str, progress: bool) -> tqdm:
    """A bar that counts steps, or seconds when there is a time budget."""
    if max_seconds is None:
        return tqdm(total=steps, desc=description, disable=not progress, leave=False)
    return tqdm(total=max_seconds, desc=description, disable=not progress, leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:g} s{postfix}")


def _check_loss(loss: object) -> None:
    """The first loss must be a scalar tensor that depends on the model's parameters."""
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"objective must return a scalar loss tensor, got {shape}")
    if not loss.requires_grad:
        raise ValueError(
            "the objective's loss does not depend on the model's parameters (no gradient): "
            "the objective must call the model it is given, objective(model, generator)"
        )


def _record(history: History, pending: list[Tensor], first_step: int) -> None:
    """Append the losses to the history; raise at the first one that is NaN or inf."""
    values = torch.stack(pending).cpu()
    finite = torch.isfinite(values)
    if not finite.all():
        bad = int((~finite).nonzero()[0])
        raise FloatingPointError(
            f"the loss became {values[bad].item()} at step {first_step + bad}: "
            "lower lr, set grad_clip, or check the objective for a division by zero"
        )
    history.loss.extend(values.tolist())
