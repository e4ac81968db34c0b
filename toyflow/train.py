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
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

Objective = Callable[[nn.Module, torch.Generator], Tensor]


@dataclass
class History:
    """What ``fit`` measured: the loss of every step, the wall time and the number of steps."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0

    def smoothed(self, window: int = 100) -> list[float]:
        """Running mean of the loss over ``window`` steps, for plots."""
        loss = torch.tensor(self.loss)
        kernel = torch.ones(1, 1, min(window, len(loss))) / min(window, len(loss))
        return torch.conv1d(loss[None, None], kernel)[0, 0].tolist()


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


def fit(
    model: nn.Module,
    objective: Objective,
    steps: int = 2000,
    *,
    lr: float = 1e-3,
    schedule: str = "cosine",
    ema: float | None = None,
    grad_clip: float | None = None,
    seed: int = 0,
    progress: bool = True,
    description: str = "training",
    check_every: int = 50,
) -> History:
    """Minimise ``objective(model, generator)`` with Adam for ``steps`` steps; return the history.

    Args:
        model: trained in place. With ``ema``, it ends holding the averaged weights.
        objective: ``(model, generator) -> loss``; the generator lives on the model's device
            and is seeded with ``seed``, so a run is reproducible on the CPU.
        steps: number of optimiser steps.
        lr: peak learning rate.
        schedule: ``"cosine"`` (decay to 0, usually the better final model) or ``"constant"``.
        ema: decay of an exponential moving average of the weights, e.g. 0.999; None for none.
        grad_clip: clip the gradient norm to this value; None for no clipping.
        progress: show a ``tqdm`` progress bar with the running loss.
        check_every: how often (in steps) the loss is copied to the host and checked; a NaN or
            inf stops training with a ``FloatingPointError`` naming the first bad step.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if ema is not None and not 0 < ema < 1:
        raise ValueError(f"ema must be in (0, 1) or None, got {ema}")

    generator = torch.Generator(model_device(model)).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    decay = (lambda i: 0.5 * (1 + math.cos(math.pi * i / steps))) if schedule == "cosine" else (lambda i: 1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
    averaged = copy.deepcopy(model).requires_grad_(False) if ema is not None else None

    history, pending = History(), []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=description, disable=not progress, leave=False)
    model.train()
    for step in bar:
        loss = objective(model, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        if averaged is not None:
            with torch.no_grad():
                for avg, new in zip(averaged.parameters(), model.parameters()):
                    avg.lerp_(new, 1 - ema)
        pending.append(loss.detach())
        if len(pending) == check_every or step == steps - 1:
            _record(history, pending, first_step=step + 1 - len(pending))
            pending = []
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    bar.close()
    if averaged is not None:
        model.load_state_dict(averaged.state_dict())
    model.eval()
    history.seconds = time.perf_counter() - start
    history.steps = steps
    return history


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
