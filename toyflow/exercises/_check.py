"""The machinery every checker shares: run the student's function beside the reference on random cases and
say in plain words what is wrong; and the random cases several topics draw from.

The cases are float64 (tolerances stay tight) and drawn from a seeded generator through the bottom layer,
so a checker gives the same verdict every time and leaves the global random state alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from .. import _base, closed_form

Case = tuple  # the positional arguments of one call
Diagnosis = tuple[str, Callable[..., Tensor]]  # (what the mistake is, the function that makes it)


def compare(
    student: Callable[..., Tensor],
    reference: Callable[..., Tensor],
    cases: Sequence[Case],
    name: str,
    diagnoses: Sequence[Diagnosis] = (),
    atol: float = 1e-5,
) -> bool:
    """Run ``student(*case)`` and ``reference(*case)`` on every case; print a verdict; True if all agree.

    The verdict names the first thing that is wrong: not written yet, an exception, not a tensor,
    the wrong shape (both shapes), NaN, or values off by how much — and, when the wrong values
    equal one of the ``diagnoses`` (common mistakes, each written as a function), which mistake.
    """

    def fail(index: int, message: str) -> bool:
        print(f"{name}: wrong on case {index}: {message}")
        return False

    for index, case in enumerate(cases, 1):
        try:
            got = student(*case)
        except NotImplementedError:
            print(f"{name}: not written yet — replace `raise NotImplementedError` with your code and run the cell again.")
            return False
        except Exception as error:  # the student's bug, reported rather than raised
            return fail(index, f"your function raised {type(error).__name__}: {error}")
        with torch.no_grad():
            expected = reference(*case)
        if not isinstance(got, Tensor):
            return fail(index, f"it must return a torch.Tensor, got {type(got).__name__}.")
        if got.shape != expected.shape:
            return fail(index, f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.")
        if not torch.isfinite(got).all():
            return fail(index, "the result holds NaN or inf.")
        if torch.allclose(got, expected, atol=atol, rtol=1e-4):
            continue
        for mistake, wrong in diagnoses:
            with torch.no_grad():
                if torch.allclose(got, wrong(*case), atol=atol, rtol=1e-4):
                    return fail(index, f"it looks like {mistake}.")
        error = (got - expected).abs().max().item()
        return fail(index, f"off by up to {error:.3g} from the reference (tolerance {atol:g}).")
    print(f"{name}: correct on {len(cases)} random cases.")
    return True


def as_float64(function: Callable[..., object]) -> Callable[..., object]:
    """The student's number as a float64 tensor, so that a Python float and a 0-d tensor of any dtype both pass."""

    def call(*case):
        got = function(*case)
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            return torch.tensor(float(got), dtype=torch.float64)
        return got.to(torch.float64) if isinstance(got, Tensor) else got

    return call


# ---------------------------------------------------------------- random cases


def normal(shape: _base.Shape, generator: torch.Generator) -> Tensor:
    """Standard normal float64 numbers of ``shape``."""
    return _base.randn(shape, generator=generator, dtype=torch.float64)


def uniform(shape: _base.Shape, generator: torch.Generator) -> Tensor:
    """Uniform float64 numbers on ``[0, 1)`` of ``shape``."""
    return _base.rand(shape, generator=generator, dtype=torch.float64)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build networks (whose layers draw their initial weights from the global generator) from ``seed``,
    leaving the caller's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def gaussian_field(generator: torch.Generator) -> Callable[[Tensor, Tensor], Tensor]:
    """A closed-form, non-linear-in-time velocity field (Gaussian → Gaussian) for checking steps."""
    mean = tuple(_base.randn(2, generator=generator).tolist())
    std = 0.3 + _base.rand((), generator=generator).item()
    return closed_form.GaussianToGaussian(mean, std).velocity


def step_cases(seed: int = 0, count: int = 4) -> list[Case]:
    """``(v, x (16, 2), t, dt)``: a closed-form field, points, and 0-d times ``t < 0.8``, ``dt`` in ``[0.05, 0.2)``."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(count):
        x = normal((16, 2), generator)
        t = uniform((), generator) * 0.8
        dt = 0.05 + uniform((), generator) * 0.15
        cases.append((gaussian_field(generator), x, t, dt))
    return cases


def pair_cases(seed: int, count: int = 4, n: int = 32) -> list[Case]:
    """``(x0 (n, 2), x1 (n, 2), t (n,))``: source points, data points around ``(3, 3)``, times in ``[0, 1)``."""
    generator = torch.Generator().manual_seed(seed)
    return [(normal((n, 2), generator), normal((n, 2), generator) * 0.5 + 3.0, uniform(n, generator))
            for _ in range(count)]
