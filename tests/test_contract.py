"""The contract of issue 21, checked on every objective and every sampler the library has.

Nothing here lists the methods by hand: :func:`_found` walks ``toyflow`` and its submodules and finds

* **objectives**: public classes whose ``__call__`` takes ``(model, generator, ...)``;
* **samplers**: public functions annotated to return ``solvers.Solution``.

``OBJECTIVES`` and ``SAMPLERS`` below only say how to build a tiny instance of each (a model, its fields, its
arguments) and give a bad value for every field or argument. A method the walk finds and the registry lacks
fails every check, with a message that says to add it: a new objective or sampler cannot slip past the contract.

Every objective must: be a dataclass called as ``objective(model, generator=None)``; return a finite 0-d loss
that back-propagates; give a float64 loss for float64 data and model; run with ``generator=None`` and with a CPU
generator, reproducibly from one seed; draw a stochastic path's noise from that generator; honour pair weights
(when it draws pairs); reject every bad field with a ``ValueError``/``TypeError`` that names it; stop on a reward
that returns NaN or the wrong shape; and, with its model and data on the GPU, give the CPU run's loss from a CPU
generator and run with a GPU one.

Every sampler must: return a ``Solution(x, grid, nfe, path)``, ``grid`` on ``x``'s device and dtype, ``path``
``(T + 1, n, d)`` when asked; report ``nfe`` = the velocity evaluations per output point (counted here by
wrapping the velocity: rows evaluated / points returned); keep float64 in float64; be reproducible from one seed;
reject bad arguments and broken rewards naming them; and give the CPU run's samples from GPU inputs and a CPU
generator. The GPU checks skip without CUDA; ``TOYFLOW_TEST_DEVICE=cpu`` runs them on the CPU (a dry run).

A source scan keeps every random draw in ``toyflow/_base.py`` (the device rule).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import inspect
import math
import os
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

import toyflow
from toyflow import couplings, data, finetune, latent, models, nf, paths, refine, restore, solvers

B = 8  # batch size of every tiny objective and sampler
CPU = torch.device("cpu")
# the accelerator; TOYFLOW_TEST_DEVICE=cpu runs its tests on the CPU (a dry run of the test code, as in test_cuda.py)
ACCELERATOR = os.environ.get("TOYFLOW_TEST_DEVICE", "cuda")
CUDA = pytest.param(ACCELERATOR, marks=pytest.mark.skipif(
    ACCELERATOR == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False"))
BAD_POINTS = torch.zeros(3)  # not (n, d): every sampler must reject it, naming its points argument


# ---------------------------------------------------------------- introspection


IMPORT_ERRORS: dict[str, str] = {}


def _modules() -> list:
    """``toyflow`` and every submodule that imports (``__main__`` would run the command line); the others go to
    ``IMPORT_ERRORS``, so one broken module fails one test instead of the whole file."""
    modules = [toyflow]
    for info in sorted(pkgutil.walk_packages(toyflow.__path__, "toyflow."), key=lambda info: info.name):
        if info.name.endswith("__main__"):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as error:  # noqa: BLE001 - reported by test_every_module_imports
            IMPORT_ERRORS[info.name] = f"{type(error).__name__}: {error}"
    return modules


def _is_objective(obj: object) -> bool:
    if not inspect.isclass(obj):
        return False
    try:
        parameters = list(inspect.signature(obj.__call__).parameters)
    except (TypeError, ValueError):
        return False
    return parameters[1:3] == ["model", "generator"]


def _is_sampler(obj: object) -> bool:
    if not inspect.isfunction(obj):
        return False
    annotation = inspect.signature(obj).return_annotation
    return annotation is solvers.Solution or (isinstance(annotation, str) and annotation.split(".")[-1] == "Solution")


def _found() -> tuple[dict[str, type], dict[str, Callable]]:
    """``{"module.Name": object}`` for every public objective class and sampler function defined in toyflow."""
    objectives, samplers = {}, {}
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            key = f"{module.__name__.removeprefix('toyflow.')}.{name}"
            if _is_objective(obj):
                objectives[key] = obj
            elif _is_sampler(obj):
                samplers[key] = obj
    return objectives, samplers


FOUND_OBJECTIVES, FOUND_SAMPLERS = _found()


# ---------------------------------------------------------------- how to build tiny instances


class InDtype(data.Distribution):
    """A distribution's points cast to ``dtype`` (float64 data in a float32 world); labels pass through."""

    def __init__(self, base, dtype: torch.dtype):
        self.base, self.dtype, self.dim = base, dtype, getattr(base, "dim", 2)

    def sample(self, n, generator=None, device=None):
        return self.base.sample(n, generator, device).to(self.dtype)

    def sample_labelled(self, n, generator=None, device=None):
        x, label = self.base.sample_labelled(n, generator, device)
        return x.to(self.dtype), label


@dataclass
class WeightedPairs:
    """The same ``B`` labelled pairs at every draw, with the given weights: nothing random, so two calls with
    one seed differ only in the weights."""

    weight: Tensor | None
    dtype: torch.dtype

    def sample(self, n, generator=None, device=None) -> couplings.PairBatch:
        if n != B:
            raise AssertionError(f"the weighted-pairs check needs batch_size={B}, got {n}")
        g = torch.Generator().manual_seed(123)
        x0 = data.get("gaussian").sample(B, g).to(device=device, dtype=self.dtype)
        x1 = data.get("moons").sample(B, g).to(device=device, dtype=self.dtype)
        label = (torch.arange(B) % 2).to(device)
        weight = None if self.weight is None else self.weight.to(device=device, dtype=self.dtype)
        return couplings.PairBatch(x0, x1, weight, label)


@dataclass
class Kit:
    """Where and in which dtype a tiny instance is built; ``weighted`` swaps its pairs for :class:`WeightedPairs`
    carrying ``weight``."""

    device: torch.device = CPU
    dtype: torch.dtype = torch.float32
    weight: Tensor | None = field(default=None)
    weighted: bool = False

    def net(self, module: nn.Module) -> nn.Module:
        return module.to(device=self.device, dtype=self.dtype)

    def dist(self, name: str = "moons", base=None) -> InDtype:
        return InDtype(base if base is not None else data.get(name), self.dtype)

    @property
    def pairs(self):
        if self.weighted:
            return WeightedPairs(self.weight, self.dtype)
        return couplings.PairSampler(self.dist("gaussian"), self.dist("moons"))

    @property
    def labelled_pairs(self):
        if self.weighted:
            return WeightedPairs(self.weight, self.dtype)
        return couplings.LabelledPairSampler(self.dist("gaussian"), self.dist("moons"))


def reward(x: Tensor) -> Tensor:
    """A smooth reward ``(n, d) -> (n,)``: closeness to the point (1, 0)."""
    return -((x - torch.tensor([1.0, 0.0], device=x.device, dtype=x.dtype)) ** 2).sum(1)


def velocity_net(times: int = 1, dim: int = 2) -> nn.Module:
    return models.VelocityMLP(dim=dim, hidden=16, depth=2, times=times)


@dataclass
class ObjectiveCase:
    """``fields(kit)``: the constructor's keyword arguments of a tiny instance; ``model(kit, fields)``: the model it
    trains; ``bad``: a bad value per field (each must raise naming the field); ``free``: fields with no bad value."""

    fields: Callable[[Kit], dict]
    model: Callable[[Kit, dict], nn.Module]
    bad: dict[str, object]
    free: tuple[str, ...] = ()


NOT_PAIRS = data.get("moons")  # a distribution where a pair sampler is expected
NOT_CALLABLE = 3
NAN = math.nan

_velocity_model = lambda kit, fields: kit.net(velocity_net())  # noqa: E731
_average_model = lambda kit, fields: kit.net(velocity_net(times=2))  # noqa: E731
_copy_of_reference = lambda kit, fields: copy.deepcopy(fields["reference"])  # noqa: E731
_MEANFLOW_BAD = {"pairs": NOT_PAIRS, "path": "linear", "time": 0.5, "batch_size": 1, "p": -1.0, "c": 0.0,
                 "dispersive": -1.0, "tau": 0.0}
_drop = lambda bad, name: {key: value for key, value in bad.items() if key != name}  # noqa: E731
_FINETUNE_BAD = {"reference": NOT_CALLABLE, "reward": NOT_CALLABLE, "source": NOT_CALLABLE, "batch_size": 0,
                 "steps": 0, "groups": B}  # groups = B: groups of one, where a group statistic needs two

OBJECTIVES: dict[str, ObjectiveCase] = {
    "flow_matching.FlowMatching": ObjectiveCase(
        lambda kit: dict(pairs=kit.pairs, batch_size=B), _velocity_model,
        {"pairs": NOT_PAIRS, "path": "linear", "time": 0.5, "batch_size": 0, "loss": "l3", "huber_c": -1.0}),
    "meanflow.MeanFlow": ObjectiveCase(lambda kit: dict(pairs=kit.pairs, batch_size=B), _average_model, _MEANFLOW_BAD),
    "meanflow.SplitMeanFlow": ObjectiveCase(lambda kit: dict(pairs=kit.pairs, batch_size=B), _average_model, _MEANFLOW_BAD),
    "rectify.Distillation": ObjectiveCase(
        lambda kit: dict(pairs=kit.pairs, batch_size=B), _velocity_model, {"pairs": NOT_PAIRS, "batch_size": 0}),
    "guidance.ConditionalFlowMatching": ObjectiveCase(
        lambda kit: dict(pairs=kit.labelled_pairs, batch_size=B),
        lambda kit, fields: kit.net(models.ConditionalVelocityMLP(classes=2, hidden=16, depth=2)),
        {"pairs": NOT_PAIRS, "drop": 1.0, "path": "linear", "time": 0.5, "batch_size": 0}),
    "flowmap.FlowMapDistillation": ObjectiveCase(
        lambda kit: dict(teacher=kit.net(velocity_net()), source=kit.dist("gaussian"), batch_size=B), _average_model,
        {"teacher": NOT_CALLABLE, "source": NOT_CALLABLE, "time": 0.5, "batch_size": 1, "from_zero": 1.5, "p": -1.0,
         "c": 0.0, "gradient": "nope"}),
    "latent.Reconstruction": ObjectiveCase(
        lambda kit: dict(data=kit.dist("moons"), batch_size=B),
        lambda kit, fields: kit.net(latent.Autoencoder(dim=2, latent=1, hidden=16)),
        {"data": NOT_CALLABLE, "batch_size": 0}),
    "nf.base.MaximumLikelihood": ObjectiveCase(
        lambda kit: dict(data=kit.dist("moons"), batch_size=B, noise=0.05),
        lambda kit, fields: kit.net(nf.RealNVP(layers=2, hidden=16)),
        {"data": NOT_CALLABLE, "batch_size": 0, "noise": -1.0}),
    "nf.denoise.Denoising": ObjectiveCase(
        lambda kit: dict(data=kit.dist(base=nf.Wander(length=4)), noise=0.1, batch_size=B),
        lambda kit, fields: kit.net(nf.Denoiser(tokens=4, channels=2, hidden=16)),
        {"data": NOT_CALLABLE, "noise": 0.0, "batch_size": 0}),
    "restore.PosteriorMeanRegression": ObjectiveCase(
        lambda kit: dict(target=kit.dist("moons"), degrade=restore.add_noise(0.1), batch_size=B),
        lambda kit, fields: kit.net(restore.posterior_mean_net(inputs=2, hidden=16)),
        {"target": NOT_CALLABLE, "degrade": NOT_CALLABLE, "batch_size": 0}),
    "refine.RefinerObjective": ObjectiveCase(
        lambda kit: dict(teacher=kit.net(velocity_net()), pairs=kit.pairs, batch_size=B),
        lambda kit, fields: kit.net(refine.Refiner(hidden=16)),
        {"teacher": NOT_CALLABLE, "pairs": NOT_PAIRS, "batch_size": 0}),
    "schedules.BossStraightening": ObjectiveCase(
        lambda kit: dict(teacher=kit.net(velocity_net()), x0=kit.dist("gaussian").sample(4, torch.Generator().manual_seed(2),
                         kit.device), schedule=torch.tensor([0.0, 0.4, 1.0]), substeps=2, batch_size=B),
        _velocity_model,
        {"teacher": NOT_CALLABLE, "x0": BAD_POINTS, "schedule": torch.tensor([0.0, 1.5]), "substeps": 0, "batch_size": 0}),
    "sde.InterpolantRegression": ObjectiveCase(
        lambda kit: dict(pairs=kit.pairs, batch_size=B), _velocity_model,
        {"pairs": NOT_PAIRS, "path": paths.linear(), "time": 0.5, "batch_size": 0, "target": "score"}),
    "finetune.FlowGRPO": ObjectiveCase(
        lambda kit: dict(reference=kit.net(velocity_net()), reward=reward, source=kit.dist("gaussian"), batch_size=B,
                         steps=3),
        _copy_of_reference,
        {**_FINETUNE_BAD, "steps": 1, "diffusion": "nope", "clip": 0.0, "kl": -1.0, "updates": 0, "step_fraction": 0.0},
        free=("guard", "shared_noise", "history")),
    "finetune.ReinFlow": ObjectiveCase(
        lambda kit: dict(reward=reward, source=kit.dist("gaussian"), batch_size=B, steps=3),
        lambda kit, fields: kit.net(finetune.NoisyPolicy(velocity_net(), hidden=8)),
        {**_drop(_FINETUNE_BAD, "reference"), "entropy": -1.0},
        free=("history",)),
    "finetune.AdvantageWeightedMatching": ObjectiveCase(
        lambda kit: dict(reference=kit.net(velocity_net()), reward=reward, source=kit.dist("gaussian"), batch_size=B,
                         steps=3),
        _copy_of_reference, {**_FINETUNE_BAD, "kl": -1.0}, free=("history",)),
    "finetune.RewardWeightedRegression": ObjectiveCase(
        lambda kit: dict(reference=kit.net(velocity_net()), reward=reward, source=kit.dist("gaussian"), batch_size=B,
                         steps=3),
        _copy_of_reference, {**_FINETUNE_BAD, "kl": -1.0, "beta": 0.0}, free=("history",)),
    "finetune.FlowDPO": ObjectiveCase(
        lambda kit: dict(reference=kit.net(velocity_net()), reward=reward, source=kit.dist("gaussian"), batch_size=B,
                         steps=3, pool=16),
        _copy_of_reference, {**_drop(_FINETUNE_BAD, "groups"), "beta": 0.0, "pool": 0}, free=("history",)),
}


@dataclass
class SamplerCase:
    """``defaults``: the arguments of a tiny call (a value ``lambda f: ...`` reads the fields built by :func:`_fields`);
    ``bad``: a bad value per argument (each must raise naming the argument); ``counted``: the fields whose
    evaluations are the NFE; ``free``: arguments with no bad value."""

    defaults: dict[str, object]
    bad: dict[str, object]
    counted: tuple[str, ...] = ("velocity",)
    free: tuple[str, ...] = ("generator", "return_path")


_v, _x0, _reward = (lambda f: f.velocity), (lambda f: f.x0), (lambda f: reward)
_SEARCH_BAD = {"v": NOT_CALLABLE, "reward": NOT_CALLABLE, "x0": BAD_POINTS, "steps": 0, "diffusion": "nope", "path": "vp"}

SAMPLERS: dict[str, SamplerCase] = {
    "solvers.integrate": SamplerCase(
        dict(v=_v, x0=_x0, steps=3),
        {"v": NOT_CALLABLE, "x0": BAD_POINTS, "steps": 0, "method": "nope", "grid": torch.tensor([0.0]),
         "path": paths.linear()}),  # path= without method="path"
    "solvers.integrate_adaptive": SamplerCase(
        dict(v=_v, x0=_x0, rtol=1e-3, atol=1e-3),
        {"v": NOT_CALLABLE, "x0": BAD_POINTS, "rtol": 0.0, "atol": -1.0, "t0": NAN, "t1": NAN}),
    "meanflow.sample": SamplerCase(
        dict(u=lambda f: f.average, x0=_x0, steps=2),
        {"u": NOT_CALLABLE, "x0": BAD_POINTS, "steps": 0, "grid": torch.tensor([0.5, 0.2])}, counted=("average",)),
    "sde.euler_maruyama": SamplerCase(
        dict(v=_v, x0=_x0, steps=3),
        {"v": NOT_CALLABLE, "x0": BAD_POINTS, "steps": 0, "diffusion": "nope", "grid": torch.tensor([0.0, 2.0]),
         "path": "vp"}),
    "sde.interpolant_sde": SamplerCase(
        dict(velocity=_v, denoiser=lambda f: f.denoiser, x0=_x0,
              path=lambda f: paths.stochastic(), steps=4, delta=0.1),
        {"velocity": NOT_CALLABLE, "denoiser": NOT_CALLABLE, "x0": BAD_POINTS, "path": paths.linear(), "steps": 0,
         "epsilon": -1.0, "delta": 0.6},
        counted=("velocity", "denoiser")),
    "search.best_of_n": SamplerCase(
        dict(v=_v, reward=_reward, x0=_x0, candidates=3, steps=3, diffusion="vp"),
        {**_drop(_SEARCH_BAD, "path"), "candidates": 0}),
    "search.particles": SamplerCase(
        dict(v=_v, reward=_reward, x0=_x0, count=3, steps=3, temperature=1.0),
        {**_SEARCH_BAD, "count": 0, "temperature": -1.0}),
    "search.rollover": SamplerCase(
        dict(v=_v, reward=_reward, x0=_x0, quota=2, steps=3),
        {**_SEARCH_BAD, "quota": 0}),
    "guidance.steer": SamplerCase(
        dict(v=_v, reward=_reward, x0=_x0, steps=3, inner=2),
        {"v": NOT_CALLABLE, "reward": NOT_CALLABLE, "x0": BAD_POINTS, "steps": 0, "lr": -1.0, "inner": -1,
         "until": NAN}),
    "latent.sample": SamplerCase(
        dict(velocity=lambda f: f.latent_velocity, autoencoder=lambda f: f.autoencoder,
              z0=lambda f: f.z0, steps=3),
        {"velocity": NOT_CALLABLE, "autoencoder": NOT_CALLABLE, "z0": BAD_POINTS, "steps": 0, "method": "nope"},
        counted=("latent_velocity",)),
    "refine.flowturbo": SamplerCase(
        dict(v=_v, refiner=lambda f: f.refiner, x0=_x0, heun=1, pseudo=2, refine=2),
        {"v": NOT_CALLABLE, "refiner": NOT_CALLABLE, "x0": BAD_POINTS, "heun": 0, "pseudo": -1, "refine": -1}),
    "refine.invert": SamplerCase(
        dict(v=_v, x1=_x0, nfe=4),
        {"v": NOT_CALLABLE, "x1": BAD_POINTS, "nfe": 0, "method": "nope"}),
    "refine.regenerate": SamplerCase(
        dict(v=_v, z=_x0, nfe=4),
        {"v": NOT_CALLABLE, "z": BAD_POINTS, "nfe": 3, "method": "nope"}),
}


# ---------------------------------------------------------------- helpers


def _objective_case(key: str) -> ObjectiveCase:
    if key not in OBJECTIVES:
        pytest.fail(f"{key} is an objective (found by introspection) with no entry in OBJECTIVES: add it to the registry "
                    "in tests/test_contract.py (how to build a tiny instance, and a bad value per field)")
    return OBJECTIVES[key]


def _sampler_case(key: str) -> SamplerCase:
    if key not in SAMPLERS:
        pytest.fail(f"{key} is a sampler (found by introspection) with no entry in SAMPLERS: add it to the registry "
                    "in tests/test_contract.py (how to call it on tiny inputs, and a bad value per argument)")
    return SAMPLERS[key]


def _build(key: str, kit: Kit, **overrides):
    """A fresh tiny objective and its model; the same seed every time, so two builds are the same."""
    case = _objective_case(key)
    toyflow.seed(0)
    fields = case.fields(kit)
    model = case.model(kit, fields)
    return FOUND_OBJECTIVES[key](**{**fields, **overrides}), model


def _loss(key: str, kit: Kit, seed: int | None = 0, **overrides) -> Tensor:
    objective, model = _build(key, kit, **overrides)
    if seed is None:
        torch.manual_seed(0)
        return objective(model)
    return objective(model, torch.Generator().manual_seed(seed))


def _grads(model: nn.Module) -> list[Tensor]:
    return [p.grad for p in model.parameters() if p.grad is not None]


class Counter(nn.Module):
    """A velocity (or any field) that counts the rows it evaluates in ``rows[0]`` (shared between fields)."""

    def __init__(self, inner: nn.Module, rows: list[int]):
        super().__init__()
        self.inner, self.rows = inner, rows

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        self.rows[0] += len(x)
        return self.inner(x, *args, **kwargs)


def _fields(kit: Kit, n: int = B) -> SimpleNamespace:
    """The tiny fields a sampler may use, on ``kit``'s device and dtype, and start points ``x0`` ``(n, 2)``, ``z0`` ``(n, 1)``."""
    toyflow.seed(0)
    g = torch.Generator().manual_seed(1)
    return SimpleNamespace(
        velocity=kit.net(velocity_net()), average=kit.net(velocity_net(times=2)), denoiser=kit.net(velocity_net()),
        latent_velocity=kit.net(velocity_net(dim=1)), autoencoder=kit.net(latent.Autoencoder(dim=2, latent=1, hidden=16)),
        refiner=kit.net(refine.Refiner(hidden=16)),
        x0=torch.randn(n, 2, generator=g).to(kit.device, kit.dtype), z0=torch.randn(n, 1, generator=g).to(kit.device, kit.dtype),
    )


def _takes(key: str, argument: str) -> bool:
    return argument in inspect.signature(FOUND_SAMPLERS[key]).parameters


def _sample(key: str, kit: Kit, seed: int | None = 0, f: SimpleNamespace | None = None, **arguments) -> solvers.Solution:
    """Run the sampler once on fresh fields; a CPU generator seeded ``seed`` when it takes one (None: the global one)."""
    f = f if f is not None else _fields(kit)
    if _takes(key, "generator") and seed is not None:
        arguments.setdefault("generator", torch.Generator().manual_seed(seed))
    defaults = {name: value(f) if _reads_fields(value) else value for name, value in _sampler_case(key).defaults.items()}
    torch.manual_seed(0)
    return FOUND_SAMPLERS[key](**{**defaults, **arguments})


def _reads_fields(value: object) -> bool:
    return inspect.isfunction(value) and value.__name__ == "<lambda>"


def _rejects(call: str, name: str, run: Callable) -> None:
    """``run()`` must raise a ``ValueError``/``TypeError`` whose message names ``name``."""
    try:
        run()
    except (ValueError, TypeError) as error:
        named = re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", str(error)) is not None
        assert named, f"{call} raised {type(error).__name__} without naming {name!r}: {error}"
    else:
        pytest.fail(f"{call} with a bad {name} did not raise (validate it: a ValueError/TypeError naming {name!r})")


# ---------------------------------------------------------------- the registry covers the library


def test_every_module_imports():
    assert not IMPORT_ERRORS, f"modules that do not import (their methods were not checked): {IMPORT_ERRORS}"


def test_introspection_finds_the_core_methods():
    assert {"flow_matching.FlowMatching", "meanflow.MeanFlow", "rectify.Distillation"} <= set(FOUND_OBJECTIVES)
    assert {"solvers.integrate", "meanflow.sample"} <= set(FOUND_SAMPLERS)


def test_every_objective_and_sampler_is_in_the_registry():
    missing = sorted(set(FOUND_OBJECTIVES) - set(OBJECTIVES)) + sorted(set(FOUND_SAMPLERS) - set(SAMPLERS))
    stale = sorted(set(OBJECTIVES) - set(FOUND_OBJECTIVES)) + sorted(set(SAMPLERS) - set(FOUND_SAMPLERS))
    assert not missing, f"found by introspection but not in the registry of tests/test_contract.py: {missing}; add them"
    assert not stale, f"in the registry of tests/test_contract.py but no longer in toyflow: {stale}; remove or rename them"


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_every_field_of_an_objective_has_a_bad_value_to_try(key):
    case = _objective_case(key)
    cls = FOUND_OBJECTIVES[key]
    fields = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
    untried = [name for name in fields if name not in case.bad and name not in case.free]
    assert not untried, f"{key}: add a bad value for {untried} to its registry entry (or list them as free)"


@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_every_argument_of_a_sampler_has_a_bad_value_to_try(key):
    case = _sampler_case(key)
    arguments = inspect.signature(FOUND_SAMPLERS[key]).parameters
    untried = [name for name in arguments if name not in case.bad and name not in case.free]
    assert not untried, f"{key}: add a bad value for {untried} to its registry entry (or list them as free)"


# ---------------------------------------------------------------- objectives


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_is_a_dataclass_called_with_model_and_an_optional_generator(key):
    _objective_case(key)
    cls = FOUND_OBJECTIVES[key]
    assert dataclasses.is_dataclass(cls), f"{key} must be a dataclass (its fields are its settings)"
    generator = inspect.signature(cls.__call__).parameters["generator"]
    assert generator.default is None, f"{key}.__call__ must default generator=None, has {generator.default!r}"


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_returns_a_finite_scalar_loss_that_backpropagates(key):
    objective, model = _build(key, Kit())
    loss = objective(model, torch.Generator().manual_seed(0))
    assert isinstance(loss, Tensor) and loss.ndim == 0, f"{key} must return a 0-d tensor, got {loss!r}"
    assert torch.isfinite(loss), f"{key} returned a non-finite loss {loss.item()}"
    assert loss.requires_grad, f"{key}'s loss carries no gradient"
    loss.backward()
    grads = _grads(model)
    assert grads, f"{key}: no parameter of the model received a gradient"
    assert all(torch.isfinite(g).all() for g in grads), f"{key}: non-finite gradients"


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_keeps_float64_data_in_float64(key):
    objective, model = _build(key, Kit(dtype=torch.float64))
    loss = objective(model, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float64, f"{key}: float64 data and model gave a {loss.dtype} loss"
    loss.backward()
    assert all(g.dtype == torch.float64 for g in _grads(model))


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_runs_without_a_generator_reproducibly_from_the_global_seed(key):
    first, second = _loss(key, Kit(), seed=None), _loss(key, Kit(), seed=None)
    assert torch.isfinite(first), f"{key}(model) without a generator gave {first.item()}"
    assert first.item() == second.item(), f"{key}: torch.manual_seed(0) twice gave {first.item()} and {second.item()}"


@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_is_reproducible_from_one_cpu_generator_seed(key):
    first, second = _loss(key, Kit(), seed=7), _loss(key, Kit(), seed=7)
    assert first.item() == second.item(), (
        f"{key}: the same generator seed gave {first.item()} and {second.item()} (a draw outside the generator?)")


WEIGHTED = sorted(key for key, cls in FOUND_OBJECTIVES.items()
                  if dataclasses.is_dataclass(cls) and "pairs" in {f.name for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("key", WEIGHTED)
def test_objective_honours_pair_weights(key):
    """With fixed pairs, weights (2 on the first half, 0 on the second) and their mirror average to the unweighted
    loss (the weighted mean is linear in the weights), and the two halves give different losses."""
    kit = lambda weight: Kit(dtype=torch.float64, weight=weight, weighted=True)  # noqa: E731
    half = torch.cat([torch.full((B // 2,), 2.0), torch.zeros(B // 2)])
    plain, ones = _loss(key, kit(None)).item(), _loss(key, kit(torch.ones(B))).item()
    first, second = _loss(key, kit(half)).item(), _loss(key, kit(half.flip(0))).item()
    assert ones == pytest.approx(plain, rel=1e-9, abs=1e-12), f"{key}: weights of 1 changed the loss {plain} -> {ones}"
    assert first != pytest.approx(second, rel=1e-6), f"{key} ignores pair weights: both halves gave {first}"
    assert (first + second) / 2 == pytest.approx(plain, rel=1e-9, abs=1e-12), (
        f"{key}: the losses of the two weighted halves, {first} and {second}, do not average to the unweighted {plain}")


BAD_FIELDS = [(key, name) for key in sorted(OBJECTIVES) for name in OBJECTIVES[key].bad]


@pytest.mark.parametrize(("key", "name"), BAD_FIELDS, ids=[f"{k}-{n}" for k, n in BAD_FIELDS])
def test_objective_rejects_a_bad_field_naming_it(key, name):
    if key not in FOUND_OBJECTIVES:
        pytest.fail(f"{key} is in the registry but not in toyflow")
    fields = {f.name for f in dataclasses.fields(FOUND_OBJECTIVES[key]) if f.init}
    assert name in fields, f"{key} has no field {name!r} (its fields: {sorted(fields)}): update its registry entry"
    _rejects(f"{key}({name}=...)", name, lambda: _build(key, Kit(), **{name: OBJECTIVES[key].bad[name]}))


STOCHASTIC = sorted(key for key, cls in FOUND_OBJECTIVES.items()
                    if dataclasses.is_dataclass(cls) and "path" in {f.name for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("key", STOCHASTIC)
def test_objective_on_a_stochastic_path_draws_its_noise_from_the_generator(key):
    """On ``x_t = α·x0 + β·x1 + γ·z`` the noise ``z`` comes from the generator: one seed, one loss; another, another."""
    first, again = _loss(key, Kit(), seed=3, path=paths.stochastic()), _loss(key, Kit(), seed=3, path=paths.stochastic())
    other = _loss(key, Kit(), seed=4, path=paths.stochastic())
    assert torch.isfinite(first), f"{key} on a stochastic path gave {first.item()}"
    assert first.item() == again.item(), f"{key} on a stochastic path: one seed gave {first.item()} and {again.item()}"
    assert first.item() != other.item(), f"{key} on a stochastic path: seeds 3 and 4 gave the same loss"


def _nan_reward(x: Tensor) -> Tensor:
    return torch.full((len(x),), math.nan, device=x.device, dtype=x.dtype) + 0 * x.sum(1)


def _points_as_reward(x: Tensor) -> Tensor:
    return x + 0  # (n, d), not (n,)


BAD_REWARDS = {"nan": _nan_reward, "shape": _points_as_reward}
REWARDED = sorted(key for key, cls in FOUND_OBJECTIVES.items()
                  if dataclasses.is_dataclass(cls) and "reward" in {f.name for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("bad", sorted(BAD_REWARDS))
@pytest.mark.parametrize("key", REWARDED)
def test_objective_stops_on_a_broken_reward(key, bad):
    """No silent failure: a reward that returns NaN or one number per coordinate raises, naming the reward."""
    objective, model = _build(key, Kit(), reward=BAD_REWARDS[bad])
    _rejects(f"{key} with a {bad} reward", "reward", lambda: objective(model, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_on_the_device_with_a_cpu_generator_gives_the_cpu_loss(key, device):
    kit = Kit(device=torch.device(device))
    objective, model = _build(key, kit)
    loss = objective(model, torch.Generator().manual_seed(0))
    assert loss.device.type == device, f"{key}: the loss of a model on {device} came back on {loss.device}"
    loss.backward()
    reference = _loss(key, Kit())
    assert loss.item() == pytest.approx(reference.item(), rel=1e-4, abs=1e-5), (
        f"{key}: one CPU seed gave {loss.item()} on {device} and {reference.item()} on the CPU")


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("key", sorted(FOUND_OBJECTIVES))
def test_objective_runs_with_a_generator_on_the_device(key, device):
    objective, model = _build(key, Kit(device=torch.device(device)))
    loss = objective(model, torch.Generator(device).manual_seed(0))
    assert loss.device.type == device and torch.isfinite(loss), f"{key}: a {device} generator gave {loss}"


# ---------------------------------------------------------------- samplers


@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_returns_a_solution(key):
    solution = _sample(key, Kit())
    assert isinstance(solution, solvers.Solution), f"{key} returned {type(solution).__name__}, not a Solution"
    assert [f.name for f in dataclasses.fields(solution)] == ["x", "grid", "nfe", "path"]
    x, grid = solution.x, solution.grid
    assert x.ndim == 2 and torch.isfinite(x).all(), f"{key}: x must be finite points (n, d), got {tuple(x.shape)}"
    assert not x.requires_grad, f"{key}: samples carry a graph"
    assert isinstance(grid, Tensor) and grid.ndim == 1 and len(grid) >= 2, f"{key}: grid must be 1-D times, got {grid!r}"
    assert grid.device == x.device and grid.dtype == x.dtype, f"{key}: grid is {grid.dtype} on {grid.device}, x {x.dtype}"
    if _takes(key, "return_path"):
        path = _sample(key, Kit(), return_path=True).path
        assert path is not None and path.shape == (len(grid), *x.shape), (
            f"{key}: return_path=True gave {None if path is None else tuple(path.shape)}, not {(len(grid), *x.shape)}")
        torch.testing.assert_close(path[-1], x)


@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_counts_its_velocity_evaluations(key):
    case = _sampler_case(key)
    f, rows = _fields(Kit()), [0]
    for name in case.counted:
        setattr(f, name, Counter(getattr(f, name), rows))
    solution = _sample(key, Kit(), f=f)
    per_point = rows[0] / len(solution.x)
    nfe = solution.nfe
    assert isinstance(nfe, int) and not isinstance(nfe, bool), f"{key}: nfe must be an int, got {nfe!r}"
    assert abs(solution.nfe - per_point) <= 0.5, (
        f"{key} reports nfe={solution.nfe}, but evaluated {case.counted} on {rows[0]} rows for {len(solution.x)} points "
        f"({per_point:g} per point)")


@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_keeps_float64_in_float64(key):
    solution = _sample(key, Kit(dtype=torch.float64))
    assert solution.x.dtype == torch.float64, f"{key}: float64 inputs gave {solution.x.dtype} samples"
    assert solution.grid.dtype == torch.float64, f"{key}: float64 inputs gave a {solution.grid.dtype} grid"


@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_is_reproducible_from_one_seed(key):
    if _takes(key, "generator"):
        default = inspect.signature(FOUND_SAMPLERS[key]).parameters["generator"].default
        assert default is None, f"{key} must default generator=None, has {default!r}"
    for seed in (0, None):
        first, second = _sample(key, Kit(), seed=seed).x, _sample(key, Kit(), seed=seed).x
        seeded = "a CPU generator" if seed is not None else "the global seed"
        assert torch.equal(first, second), f"{key}: the same seed ({seeded}) gave different samples"


BAD_ARGUMENTS = [(key, name) for key in sorted(SAMPLERS) for name in SAMPLERS[key].bad]


@pytest.mark.parametrize(("key", "name"), BAD_ARGUMENTS, ids=[f"{k}-{n}" for k, n in BAD_ARGUMENTS])
def test_sampler_rejects_a_bad_argument_naming_it(key, name):
    if key not in FOUND_SAMPLERS:
        pytest.fail(f"{key} is in the registry but not in toyflow")
    assert _takes(key, name), f"{key} has no argument {name!r}: update its registry entry"
    _rejects(f"{key}({name}=...)", name, lambda: _sample(key, Kit(), **{name: SAMPLERS[key].bad[name]}))


@pytest.mark.parametrize("bad", sorted(BAD_REWARDS))
@pytest.mark.parametrize("key", sorted(key for key in FOUND_SAMPLERS if _takes(key, "reward")))
def test_sampler_stops_on_a_broken_reward(key, bad):
    _rejects(f"{key} with a {bad} reward", "reward", lambda: _sample(key, Kit(), reward=BAD_REWARDS[bad]))


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_on_the_device_with_a_cpu_generator_gives_the_cpu_samples(key, device):
    solution = _sample(key, Kit(device=torch.device(device)))
    assert solution.x.device.type == device, f"{key}: inputs on {device} gave samples on {solution.x.device}"
    assert solution.grid.device.type == device, f"{key}: inputs on {device} gave a grid on {solution.grid.device}"
    torch.testing.assert_close(solution.x.cpu(), _sample(key, Kit()).x, atol=1e-4, rtol=1e-4,
                               msg=lambda m: f"{key}: one CPU seed gave other samples on {device}: {m}")


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("key", sorted(FOUND_SAMPLERS))
def test_sampler_runs_with_a_generator_on_the_device(key, device):
    generator = {"generator": torch.Generator(device).manual_seed(0)} if _takes(key, "generator") else {}
    solution = _sample(key, Kit(device=torch.device(device)), **generator)
    assert solution.x.device.type == device and torch.isfinite(solution.x).all()


# ---------------------------------------------------------------- the source: one device rule

SAMPLING = {"randn", "rand", "randint", "randperm", "multinomial", "normal", "bernoulli", "poisson", "randn_like",
            "rand_like", "randint_like"}
IN_PLACE = {"normal_", "uniform_", "bernoulli_", "exponential_", "random_", "geometric_", "cauchy_", "log_normal_"}
LIBRARY = Path(toyflow.__file__).parent


def _offences(path: Path, root: Path = LIBRARY.parent) -> list[str]:
    """Calls of torch's samplers, in-place random fills and the ``generator.device if`` idiom in the code of ``path``
    (docstrings and comments are not code)."""
    tree, found = ast.parse(path.read_text()), []
    where = lambda node, what: f"{path.relative_to(root).as_posix()}:{node.lineno}: {what}"  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, node.func.value
            if name in SAMPLING and isinstance(owner, ast.Name) and owner.id == "torch":
                found.append(where(node, f"torch.{name}(...)"))
            elif name in IN_PLACE:
                found.append(where(node, f".{name}(...)"))
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            found += [where(node, f"from torch import {a.name}") for a in node.names if a.name in SAMPLING]
        elif isinstance(node, ast.IfExp) and _is_generator_device(node.body):
            found.append(where(node, ast.unparse(node)))
    return sorted(found, key=lambda offence: int(offence.split(":")[1]))


def _is_generator_device(node: ast.expr) -> bool:
    """``generator.device`` (any name holding "generator")."""
    return (isinstance(node, ast.Attribute) and node.attr == "device" and isinstance(node.value, ast.Name)
            and "generator" in node.value.id)


def test_only_the_bottom_layer_draws_random_numbers():
    files = sorted(p for p in LIBRARY.rglob("*.py") if p != LIBRARY / "_base.py")
    assert len(files) > 10
    offences = [offence for path in files for offence in _offences(path)]
    assert not offences, (
        "random numbers must be drawn through toyflow._base (randn, rand, randint, randperm, multinomial), which "
        "applies the device rule; no `generator.device if ...` either (use _base.draw_device). Offenders:\n"
        + "\n".join(offences))


def test_the_source_scan_catches_what_it_should(tmp_path):
    sample = tmp_path / "toyflow" / "bad.py"
    sample.parent.mkdir()
    sample.write_text('"""torch.randn(3) in a docstring is not code."""\nimport torch\n\n\ndef f(generator, x):\n'
                      "    d = generator.device if generator is not None else None  # torch.rand(2) in a comment\n"
                      "    x.normal_()\n    return torch.randn(3, generator=generator), torch.rand_like(x), torch.zeros(2)\n")
    offences = _offences(sample, root=tmp_path)
    assert [o.split(": ", 1)[1] for o in offences] == [
        "generator.device if generator is not None else None", ".normal_(...)", "torch.randn(...)", "torch.rand_like(...)"]
    assert all(o.startswith("toyflow/bad.py:") for o in offences)

