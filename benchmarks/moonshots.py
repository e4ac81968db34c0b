"""Issue 14's performance moonshots, each at the best configuration found so far, over seeds: median and worst.

- flow matching on torchcfm's task: W2 @ 100 Euler NFE after ``--fm-budget`` s of training (goal ≤ 0.15 in 20 s);
- a one-step generator on torchcfm's task in ``--one-step-budget`` s (goal W2 @ 1 ≤ 0.15 in 45 s): SplitMeanFlow on
  exact-OT pairs, or (``--one-step distill``) a 1-RF teacher, its rectified pairs and one-step distillation of the
  teacher on those pairs (Liu et al. 2022), every stage counted;
- the best normalizing flow on 8 gaussians: toyflow's rational-quadratic ``SplineFlow`` trained by maximum
  likelihood for ``--nf-budget`` s, its NLL gap to the true density on 5,000 held-out points (goal ≤ 0.02 nats
  within 60 s; RealNVP, MAF and the CNF are measured by benchmarks/nf.py).

With the bench extras installed, the other libraries run in the same process, at the same budgets and seeds: for each
W2 goal torchcfm's README recipe (their MLP and loop, σ = 0.1; I-CFM for 100 NFE, OT-CFM for one step) and its
matcher (σ = 0) in toyflow's recipe; for the likelihood goal zuko's neural spline flow with the spline's settings.

Training budgets are wall time: steps are set from a measured step time, so a loaded machine trains fewer steps.
W2 is exact on 2,000 points against torchcfm's stratified reference (benchmarks/common.py), whose i.i.d. floor
(the W2 of exact target draws) is printed first: a sampler cannot be expected to score below it. Writes
benchmarks/results/moonshots.json.

    python benchmarks/moonshots.py                 # three seeds, every part (about 6 minutes on 2 cores)
    python benchmarks/moonshots.py --parts nf --seeds 0   # one part, one seed
"""

from __future__ import annotations

import copy
import importlib.util
import time

import torch
from common import (
    TorchcfmMatcher,
    ZukoNSF,
    parse,
    parser,
    save,
    steps_in,
    summarise_seeds,
    torchcfm_available,
    torchcfm_task,
    train_torchcfm,
)

import toyflow
from toyflow import couplings, data, meanflow, metrics, models, nf, plot, rectify, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import SplitMeanFlow
from toyflow.train import fit

GOALS = {"flow matching, W2 @ 100": 0.15, "one step, W2 @ 1": 0.15, "normalizing flow, NLL gap": 0.02}

# The best settings found (one seed each, on a loaded 2-core CPU). Flow matching: batch 512 with an EMA and lr 5e-3 (W2 @ 100
# 0.195) beat the default batch 256 (0.258), batch 1024 with or without an EMA (0.219-0.247), a 256-wide or 4-deep net
# (0.205, 0.218), U-shaped times (0.257) and exact-OT pairs (0.418, fewer steps). One step: SplitMeanFlow on OT pairs
# (0.21-0.28) beat 1-RF + distillation of its pairs (0.27-0.30). SplineFlow: 8 x 64 (gap 0.020) beat 6 x 64 (0.024) and
# 4 x 64 (0.031) at 45 s, batch 512, lr 5e-3; alone, seed 0, 55 s: 12 bins 0.005 against 8 bins 0.013 (batch 1024: 0.012).
FM = dict(batch=512, lr=5e-3, ema=0.999)
SPLIT = dict(batch=256, lr=1e-2, grad_clip=1.0, ema=None)  # SplitMeanFlow on exact-OT pairs, as in meanflow.py
TEACHER_SHARE, PAIRS, PAIR_STEPS = 0.5, 20000, 100  # of the one-step budget; rectified pairs; Euler steps per pair
DISTILL = dict(batch=512, lr=5e-3, ema=0.999)
SPLINE = dict(layers=8, hidden=64, bins=12, lr=5e-3, batch=512)


def result(goal: str, method: str, seed: int, steps: int | str, seconds: float, value: float) -> dict:
    """One row of the table: which goal, by which method and seed, the steps, the training seconds and the value."""
    return {"goal": goal, "method": method, "seed": seed, "steps": steps, "train s": seconds, "value": value}


def fm_recipe(task, objective, budget: float, seed: int, nfe: int) -> tuple[models.VelocityMLP, int, float, float]:
    """``VelocityMLP`` trained on ``objective`` with the ``FM`` settings for ``budget`` s: the model, its steps, its
    training seconds and its W2 after ``nfe`` Euler steps."""
    steps = steps_in(models.VelocityMLP, objective, budget, FM["lr"], ema=FM["ema"])
    torch.manual_seed(seed)
    model = models.VelocityMLP()
    history = fit(model, objective, steps, lr=FM["lr"], ema=FM["ema"], seed=seed, progress=False)
    return model, steps, history.seconds, metrics.w2(solvers.integrate(model, task.x0, nfe).x, task.x1)


def flow_matching(task, budget: float, seed: int) -> tuple[models.VelocityMLP, dict]:
    """Flow matching with independent pairs, ``FM`` settings, for ``budget`` s; the model and its row."""
    objective = FlowMatching(couplings.PairSampler(task.source, task.target), batch_size=FM["batch"])
    model, steps, seconds, w2 = fm_recipe(task, objective, budget, seed, 100)
    return model, result("flow matching, W2 @ 100", "flow matching", seed, steps, seconds, w2)


def split_meanflow(task, budget: float, seed: int) -> dict:
    """SplitMeanFlow (Guo et al. 2025) on exact minibatch-OT pairs with the ``SPLIT`` settings, ``budget`` s; W2 @ 1."""
    objective = SplitMeanFlow(couplings.PairSampler(task.source, task.target, couplings.ExactOT()), batch_size=SPLIT["batch"])
    steps = steps_in(lambda: models.VelocityMLP(times=2), objective, budget, SPLIT["lr"], grad_clip=SPLIT["grad_clip"])
    torch.manual_seed(seed)
    model = models.VelocityMLP(times=2)
    history = fit(model, objective, steps, lr=SPLIT["lr"], grad_clip=SPLIT["grad_clip"], ema=SPLIT["ema"], seed=seed,
                  progress=False)
    w2 = metrics.w2(meanflow.sample(model, task.x0, 1).x, task.x1)
    return result("one step, W2 @ 1", "SplitMeanFlow, OT", seed, steps, history.seconds, w2)


def distilled(task, budget: float, seed: int) -> dict:
    """1-RF teacher (``TEACHER_SHARE`` of the budget) → ``PAIRS`` rectified pairs → one-step distillation of a copy of
    the teacher on them with what is left; every stage counts towards ``budget``."""
    start = time.perf_counter()
    teacher, _ = flow_matching(task, TEACHER_SHARE * budget, seed)
    teacher_s = time.perf_counter() - start  # includes its W2 evaluation, a conservative count
    pairs = rectify.sample_pairs(teacher, task.source.sample(PAIRS, torch.Generator().manual_seed(seed + 1)),
                                 PAIR_STEPS, "euler")
    student = copy.deepcopy(teacher)
    objective = rectify.Distillation(pairs, DISTILL["batch"])
    remaining = budget - (time.perf_counter() - start)
    # 0.9: the probe costs time too
    steps = steps_in(lambda: copy.deepcopy(teacher), objective, 0.9 * remaining, DISTILL["lr"], ema=DISTILL["ema"])
    fit(student, objective, steps, lr=DISTILL["lr"], ema=DISTILL["ema"], seed=seed, progress=False)
    total = time.perf_counter() - start
    w2 = metrics.w2(rectify.one_step(student)(task.x0), task.x1)
    return result("one step, W2 @ 1", "1-RF + distillation", seed, f"teacher ({teacher_s:.0f} s) + {steps}", total, w2)


def likelihood_flow(name: str, build, budget: float, seed: int) -> dict:
    """``build()`` trained by maximum likelihood on 8 gaussians with the ``SPLINE`` settings for ``budget`` s; its NLL
    gap in nats on 5,000 held-out points."""
    target = data.get("8gaussians")
    x = target.sample(5000, torch.Generator().manual_seed(123))
    objective = nf.MaximumLikelihood(target, batch_size=SPLINE["batch"])
    steps = steps_in(build, objective, budget, SPLINE["lr"])
    toyflow.seed(seed)
    flow = build()
    history = fit(flow, objective, steps, lr=SPLINE["lr"], seed=seed, progress=False)
    with torch.no_grad():
        gap = (target.log_prob(x) - flow.log_prob(x)).mean().item()
    shape = f"{SPLINE['layers']} × {SPLINE['hidden']}, {SPLINE['bins']} bins"
    return result("normalizing flow, NLL gap", f"{name} ({shape})", seed, steps, history.seconds, gap)


def spline_flow(budget: float, seed: int) -> list[dict]:
    """toyflow's ``SplineFlow`` and, when installed, zuko's NSF of the same shape: their rows."""
    shape = dict(layers=SPLINE["layers"], hidden=SPLINE["hidden"], bins=SPLINE["bins"])
    rows = [likelihood_flow("toyflow SplineFlow", lambda: nf.SplineFlow(**shape), budget, seed)]
    if importlib.util.find_spec("zuko") is not None:
        rows.append(likelihood_flow("zuko NSF", lambda: ZukoNSF(**shape), budget, seed))
    return rows


def torchcfm_rows(task, goal: str, budget: float, seed: int) -> list[dict]:
    """torchcfm for ``budget`` s: its README recipe (σ = 0.1) and its matcher (σ = 0) in toyflow's ``FM`` recipe; I-CFM
    scored by W2 @ 100 Euler NFE for the flow-matching goal, OT-CFM by W2 @ 1 for the one-step goal."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher

    nfe, matcher, name = ((100, ConditionalFlowMatcher, "I-CFM") if goal.startswith("flow matching")
                          else (1, ExactOptimalTransportConditionalFlowMatcher, "OT-CFM"))
    _, probe = train_torchcfm(matcher(sigma=0.1), 50, "probe", seed)  # the step time of their loop
    steps = max(100, int(budget / (probe / 50)))
    velocity, seconds = train_torchcfm(matcher(sigma=0.1), steps, "torchcfm recipe", seed)
    rows = [result(goal, f"torchcfm README recipe, {name} (σ = 0.1)", seed, steps, seconds,
                   metrics.w2(solvers.integrate(velocity, task.x0, nfe).x, task.x1))]
    objective = TorchcfmMatcher(matcher(sigma=0.0), task.source, task.target, batch_size=FM["batch"])
    _, steps, seconds, w2 = fm_recipe(task, objective, budget, seed, nfe)
    rows.append(result(goal, f"torchcfm {name} (σ = 0) in toyflow's recipe", seed, steps, seconds, w2))
    return rows


ONE_STEP = {"splitmeanflow": split_meanflow, "distill": distilled}


def summarise(rows: list[dict]) -> list[dict]:
    """Per goal and method: median and worst over the seeds, the median training seconds and the verdict."""
    summary = summarise_seeds(rows, ("goal", "method"), ("value",))
    return [line | {"limit": GOALS[line["goal"]], "met (median)": line["median value"] <= GOALS[line["goal"]]}
            for line in summary]


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--parts", nargs="+", default=["fm", "one-step", "nf"], help="which moonshots (%(default)s)")
    command.add_argument("--fm-budget", type=float, default=20.0, help="flow-matching training s (%(default)s)")
    command.add_argument("--one-step-budget", type=float, default=45.0, help="one-step pipeline s (%(default)s)")
    command.add_argument("--one-step", choices=sorted(ONE_STEP), default="splitmeanflow",
                         help="which one-step generator (%(default)s)")
    command.add_argument("--nf-budget", type=float, default=50.0,
                         help="training s of each flow (%(default)s); the steps come from a short probe and have run "
                              "up to a quarter over: read the train s column")
    args, started = parse(command)

    task = torchcfm_task()
    print(task.floors())
    rows = []
    for seed in args.seeds:
        new = []
        if "fm" in args.parts:
            new.append(flow_matching(task, args.fm_budget, seed)[1])
            new += torchcfm_rows(task, new[-1]["goal"], args.fm_budget, seed) if torchcfm_available() else []
        if "one-step" in args.parts:
            new.append(ONE_STEP[args.one_step](task, args.one_step_budget, seed))
            new += torchcfm_rows(task, new[-1]["goal"], args.one_step_budget, seed) if torchcfm_available() else []
        if "nf" in args.parts:
            new += spline_flow(args.nf_budget, seed)
        rows += new
        print(plot.markdown_table(new, 4), flush=True)
    summary = summarise(rows)
    print("\n" + plot.markdown_table(summary, 4))
    print("saved", save("moonshots", {"settings": vars(args), "fm": FM, "distill": DISTILL, "spline": SPLINE,
                                      "floor_w2": task.floor, "iid_floor_w2": task.iid_floor, "rows": rows,
                                      "summary": summary}, started))


if __name__ == "__main__":
    main()
