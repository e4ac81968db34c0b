"""The bottom layer: what every module needs and nobody writes twice. It imports only torch.

* **Random draws.** :func:`randn`, :func:`rand`, :func:`randint`, :func:`randperm` and :func:`multinomial`
  are the only places toyflow calls torch's samplers. The rule: draw on the generator's device (the CPU
  when there is no generator), in the dtype asked for, then move the result to ``device``. A CPU generator
  therefore works with CUDA data (torch refuses to mix them), and one seed gives the same numbers on the
  CPU and on a GPU; for 2D batches the copy costs nothing.
* **Time.** :func:`batch_time` broadcasts a time (a float, a 0-d tensor or ``(n,)``) to a batch ``(n,)``.
* **Checks.** :func:`check_int`, :func:`check_number`, :func:`check_choice`, :func:`check_points` and
  :func:`check_grid` raise the standard ``ValueError``/``TypeError``: the argument's name, what was given,
  what is allowed.
* **Networks.** :func:`mlp` is the one multilayer perceptron builder; :func:`model_device` finds where a
  model lives.

>>> g = torch.Generator().manual_seed(0)
>>> randn((2, 3), generator=g, dtype=torch.float64).dtype
torch.float64
>>> check_int("steps", 0)
Traceback (most recent call last):
    ...
ValueError: steps must be an int >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

Device = torch.device | str | None
Shape = int | Sequence[int]


# ---------------------------------------------------------------- random draws: the one device rule


def draw_device(generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: on the generator's device (torch requires it), else on the CPU."""
    return generator.device if generator is not None else torch.device("cpu")


def _moved(x: Tensor, device: Device) -> Tensor:
    return x if device is None else x.to(device)


def _shape(shape: Shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def randn(
    shape: Shape, generator: torch.Generator | None = None, device: Device = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Standard normal numbers of ``shape``, drawn by the device rule, on ``device`` (default: the draw's)."""
    return _moved(torch.randn(_shape(shape), generator=generator, device=draw_device(generator), dtype=dtype), device)


def rand(
    shape: Shape, generator: torch.Generator | None = None, device: Device = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Uniform numbers on ``[0, 1)`` of ``shape``, drawn by the device rule, on ``device``."""
    return _moved(torch.rand(_shape(shape), generator=generator, device=draw_device(generator), dtype=dtype), device)


def randint(high: int, shape: Shape, generator: torch.Generator | None = None, device: Device = None) -> Tensor:
    """Integers in ``{0, …, high − 1}`` of ``shape`` (int64), drawn by the device rule, on ``device``."""
    return _moved(torch.randint(high, _shape(shape), generator=generator, device=draw_device(generator)), device)


def randperm(n: int, generator: torch.Generator | None = None, device: Device = None) -> Tensor:
    """A random permutation of ``0, …, n − 1`` (int64), drawn by the device rule, on ``device``."""
    return _moved(torch.randperm(n, generator=generator, device=draw_device(generator)), device)


def multinomial(
    weights: Tensor, count: int, replacement: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` indices per row of ``weights`` (``(k,)`` or ``(m, k)``, non-negative), drawn ``∝ weights`` by the
    device rule and returned on ``weights``' device."""
    drawn = torch.multinomial(weights.to(draw_device(generator)), count, replacement, generator=generator)
    return drawn.to(weights.device)


def seed_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A fresh generator seeded from ``generator`` (on its device), for work done elsewhere (a thread); None stays None."""
    if generator is None:
        return None
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(generator.device).manual_seed(seed)


# ---------------------------------------------------------------- time


def batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` (a float, a 0-d tensor or ``(n,)``) as a batch of times ``(n,)`` on ``x``'s device and dtype."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(len(x))
    if t.shape != (len(x),):
        raise ValueError(f"t must be a scalar or have shape ({len(x)},), got {tuple(t.shape)}")
    return t


# ---------------------------------------------------------------- argument checks


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else a ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_number(
    name: str, value: object, low: float | None = None, high: float | None = None,
    low_open: bool = False, high_open: bool = False, why: str = "",
) -> float:
    """``float(value)`` if it is a finite real number in the interval, else a ``ValueError`` naming ``name``.

    ``low``/``high`` bound the interval (None: unbounded), ``low_open``/``high_open`` exclude the bound;
    ``why`` is appended to the message (what the number means).
    """
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    inside = (
        math.isfinite(number)
        and (low is None or (number > low if low_open else number >= low))
        and (high is None or (number < high if high_open else number <= high))
    )
    if not inside:
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else "",
                  f"{'<' if high_open else '<='} {high}" if high is not None else ""]
        raise ValueError(f"{name} must be a finite number{' and'.join(f' {b}' for b in bounds if b)}"
                         f"{f' ({why})' if why else ''}, got {value!r}")
    return number


def check_choice(name: str, value: object, allowed: Sequence[object]) -> object:
    """``value`` if it is one of ``allowed``, else a ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_points(name: str, x: object, dim: int | None = None) -> Tensor:
    """``x`` if it is a floating tensor of shape ``(n, d)`` (``d = dim`` when given), else a ``TypeError``/``ValueError``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, {dim or 'd'}), got {type(x).__name__}")
    if x.ndim != 2 or len(x) == 0 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"{name} must have shape (n, {dim or 'd'}) with n >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def check_grid(grid: Tensor, inside_unit: bool = False, increasing: bool = False, name: str = "grid") -> Tensor:
    """``grid`` if it is a 1-D tensor of at least 2 finite, strictly monotone times (increasing when
    ``increasing``; inside ``[0, 1]`` when ``inside_unit``), else a ``ValueError`` that names ``name`` and shows it."""
    if not isinstance(grid, Tensor) or grid.ndim != 1 or len(grid) < 2:
        shape = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 times, got {shape}")
    dt = grid[1:] - grid[:-1]  # (T,)
    monotone = bool((dt > 0).all()) or (not increasing and bool((dt < 0).all()))
    inside = not inside_unit or bool(((grid >= 0) & (grid <= 1)).all())
    if not (bool(torch.isfinite(grid).all()) and monotone and inside):
        order = "strictly increasing" if increasing else "strictly increasing or strictly decreasing"
        raise ValueError(f"{name} must be {order} finite times{' in [0, 1]' if inside_unit else ''}, got {grid.tolist()}")
    return grid


def check_reward(reward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``reward(x)`` for points ``x`` ``(n, d)``, checked: a finite tensor of shape ``(n,)``, else a ``ValueError``
    that names the reward and says what it returned."""
    name = getattr(reward, "__name__", type(reward).__name__)
    value = reward(x)
    if not isinstance(value, Tensor) or value.shape != (len(x),):
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"reward {name!r} must return a tensor of shape ({len(x)},) for points {tuple(x.shape)}, got {got}")
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise ValueError(f"reward {name!r} returned NaN or inf for {bad} of {len(x)} points; a reward must be finite everywhere")
    return value


def check_callable(name: str, value: object, expected: str) -> Callable:
    """``value`` if it is callable, else a ``TypeError`` saying what was ``expected``."""
    if not callable(value):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- networks


def mlp(inputs: int, outputs: int, hidden: int, depth: int, activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ``activation``, then a linear map to ``outputs``."""
    for name, value in {"inputs": inputs, "outputs": outputs, "hidden": hidden, "depth": depth}.items():
        check_int(name, value)
    layers: list[nn.Module] = [nn.Linear(inputs, hidden), activation()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), activation()]
    return nn.Sequential(*layers, nn.Linear(hidden, outputs))


def model_device(model: nn.Module | Callable) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters or a plain function)."""
    parameters = model.parameters() if isinstance(model, nn.Module) else iter(())
    return next(parameters, torch.empty(0)).device


def model_dtype(model: nn.Module | Callable) -> torch.dtype:
    """The dtype of a model's first floating parameter (the default dtype for one without parameters)."""
    parameters = model.parameters() if isinstance(model, nn.Module) else iter(())
    return next((p.dtype for p in parameters if p.is_floating_point()), torch.get_default_dtype())
