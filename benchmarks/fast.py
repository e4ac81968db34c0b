"""Every way of going fast on torchcfm's task, at equal training time: W2 at 1, 2, 4 NFE, training s, sampling ms.

- flow maps: data-free flow-map distillation of an OT-CFM teacher (half the budget teacher, half student) next to
  distillation of the same teacher's pairs, 2-RF + distillation (InstaFlow), MeanFlow and SplitMeanFlow on OT pairs,
  and the flow-matching baselines sampled with Euler steps; the number of target samples each method drew;
- blockwise flow matching with M = 1, 2, 4 segments at equal total parameters (independent pairs);
- latent vs ambient flow matching on moons lifted into 32 dimensions (W2 in 32-D and in the original 2D coordinates);
- TARFlow decoding on 64-token ``nf.Wander`` sequences (weakly dependent tokens, ρ = 0.2, and strongly, ρ = 0.9):
  passes per block, median wall time of sequential, Jacobi and GS-Jacobi decoding taken in turns in one run, the
  speed-up over sequential and the largest difference to it; and STARFlow's deep–shallow TARFlow against the plain one.

Every method trains for ``--budget`` seconds (steps set from a measured step time), once per seed (``--seeds``: the
initialisation, the training draws and the evaluation draws of the latent part). Prints each seed's tables, then the
median and worst over the seeds, and writes benchmarks/results/fast_<parts>.json.

    python benchmarks/fast.py                        # the full run
    python benchmarks/fast.py --budget 10 --parts blockwise   # a quick look at one part
"""

from __future__ import annotations

import time

import torch
from common import median_seconds, parse, parser, save, summarise_seeds, torchcfm_task

import toyflow
from toyflow import blockwise, couplings, data, flowmap, latent, meanflow, metrics, models, nf, plot, rectify, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit

NFES = (1, 2, 4)


def seconds_per_step(build, objective, steps: int = 30, **fit_kwargs) -> float:
    toyflow.seed(0)
    return fit(build(), objective, steps, progress=False, **fit_kwargs).seconds / steps


def train_for(budget: float, build, objective, seed: int, **fit_kwargs):
    """A fresh ``build()`` (initialised from ``seed``) trained on ``objective`` for about ``budget`` seconds:
    ``(model, seconds)``."""
    steps = max(100, int(budget / seconds_per_step(build, objective, **fit_kwargs)))
    toyflow.seed(seed)
    model = build()
    return model, fit(model, objective, steps, progress=False, seed=seed, **fit_kwargs).seconds


def row(task, method: str, jump, seconds: float, drawn: int | str, nfes=NFES) -> dict:
    """W2 at each NFE of ``jump(x0, nfe)``, and the milliseconds it takes for the largest NFE."""
    result = {"method": method}
    for k in NFES:
        result[f"W2 @{k}"] = task.score(jump(task.x0, k)) if k in nfes else "—"
    result["train s"] = seconds
    result["sample ms (2,000 pts, 1 NFE)"] = 1e3 * median_seconds(lambda: jump(task.x0, 1), repeats=5)
    result["target samples"] = drawn
    return result


def flow_maps(task, budget: float, lr: float, seed: int) -> list[dict]:
    counted = flowmap.Counted(task.target)
    ot_pairs = couplings.PairSampler(task.source, counted, couplings.ExactOT())
    rows = []

    def euler(model):
        return lambda x0, k: solvers.integrate(model, x0, k).x

    def jumps(model):
        return lambda x0, k: meanflow.sample(model, x0, k).x

    counted.drawn = 0
    teacher, teacher_seconds = train_for(budget / 2, models.VelocityMLP, FlowMatching(ot_pairs), seed=seed, lr=lr)
    teacher_drawn = counted.drawn
    rows.append(row(task, "OT-CFM teacher (half budget, Euler)", euler(teacher), teacher_seconds, teacher_drawn))

    counted.drawn = 0
    objective = flowmap.FlowMapDistillation(teacher, task.source)
    student, student_seconds = train_for(budget / 2, lambda: models.VelocityMLP(times=2), objective, seed=seed, lr=lr,
                                         grad_clip=1.0)
    rows.append(
        row(
            task,
            "data-free flow map (teacher + student)",
            jumps(student),
            teacher_seconds + student_seconds,
            f"{teacher_drawn} (teacher) + {counted.drawn}",
        )
    )

    start = time.perf_counter()
    pairs = rectify.sample_pairs(teacher, task.source.sample(5000, torch.Generator().manual_seed(seed + 7)), steps=25)
    left = budget / 2 - (time.perf_counter() - start)
    one_step, distil_seconds = train_for(left, lambda: teacher.__class__(), rectify.Distillation(pairs), seed=seed, lr=1e-3)
    rows.append(
        row(
            task,
            "teacher's pairs + distillation",
            lambda x0, k: rectify.one_step(one_step)(x0),
            teacher_seconds + budget / 2 - left + distil_seconds,
            f"{teacher_drawn} (teacher) + 0",
            nfes=(1,),
        )
    )

    for name, cls in (("MeanFlow", meanflow.MeanFlow), ("SplitMeanFlow", meanflow.SplitMeanFlow)):
        counted.drawn = 0
        model, seconds = train_for(budget, lambda: models.VelocityMLP(times=2), cls(ot_pairs), seed=seed, lr=lr, grad_clip=1.0)
        rows.append(row(task, f"{name} (OT pairs)", jumps(model), seconds, counted.drawn))

    counted.drawn = 0
    start = time.perf_counter()
    steps = max(
        100, int(0.4 * budget / seconds_per_step(models.VelocityMLP, FlowMatching(couplings.PairSampler(task.source, counted))))
    )
    counted.drawn = 0
    rounds = rectify.rectified_flow(
        task.source, counted, rounds=2, steps=steps, num_pairs=5000, pair_steps=25, lr=2e-3, progress=False, seed=seed
    )
    pairs = rectify.sample_pairs(rounds[1].model, task.source.sample(5000, torch.Generator().manual_seed(seed + 1)), 25)
    left = budget - (time.perf_counter() - start)
    student = rounds[1].model  # distillation trains in place
    rectify.distill(
        student, pairs, max(100, int(left / seconds_per_step(models.VelocityMLP, rectify.Distillation(pairs)))), lr=1e-3,
        progress=False,
    )
    rows.append(
        row(
            task,
            "2-RF + distillation (InstaFlow)",
            lambda x0, k: rectify.one_step(student)(x0),
            time.perf_counter() - start,
            counted.drawn,
            nfes=(1,),
        )
    )

    for name, coupling in (("1-RF", couplings.independent), ("OT-CFM", couplings.ExactOT())):
        counted.drawn = 0
        model, seconds = train_for(
            budget, models.VelocityMLP, FlowMatching(couplings.PairSampler(task.source, counted, coupling)), seed=seed, lr=lr
        )
        rows.append(row(task, f"{name} (Euler)", euler(model), seconds, counted.drawn))
    return rows


def blockwise_rows(task, budget: float, lr: float, seed: int, nfes=(1, 2, 4, 8, 16)) -> list[dict]:
    """W2 and sampling ms against NFE for M = 1, 2, 4 segments at the parameters of one VelocityMLP(hidden=128)."""
    parameters = sum(p.numel() for p in models.VelocityMLP().parameters())
    pairs = couplings.PairSampler(task.source, task.target)
    rows, trained = [], {}
    for segments in (1, 2, 4):
        hidden = blockwise.hidden_for_parameters(parameters, segments)

        def build(segments=segments, hidden=hidden):
            return blockwise.Blockwise(segments, hidden=hidden)

        trained[segments], seconds = train_for(budget, build, FlowMatching(pairs), seed=seed, lr=lr)
        result = {
            "M": segments,
            "hidden": hidden,
            "parameters": sum(p.numel() for p in trained[segments].parameters()),
            "train s": seconds,
        }
        for k in nfes:
            result[f"W2 @{k}"] = task.score(solvers.integrate(trained[segments], task.x0, k).x)
        rows.append(result)
    timings: dict[tuple[int, int], list[float]] = {}
    for _ in range(7):  # in turns, so a busy CPU slows every M alike
        for segments, model in trained.items():
            for k in nfes:
                draw = lambda model=model, k=k: solvers.integrate(model, task.x0, k)  # noqa: E731
                timings.setdefault((segments, k), []).append(median_seconds(draw, repeats=1))
    for row in rows:
        row.update({f"ms @{k}": 1e3 * sorted(timings[row["M"], k])[3] for k in nfes})
    return rows


def latent_rows(budget: float, lr: float, seed: int, dim: int = 32) -> list[dict]:
    """Ambient flow matching in ``dim`` dimensions against autoencoder + latent flow matching, equal training time."""
    lifted = latent.Lifted("moons", dim=dim)
    generator = torch.Generator().manual_seed(seed + 1)
    reference = lifted.sample(1000, generator)
    rows = [
        {
            "method": "data (floor)",
            "train s": 0.0,
            f"W2 ({dim}-D)": metrics.w2(lifted.sample(1000, generator), reference),
            "W2 (2-D coords)": metrics.w2(lifted.project(lifted.sample(1000, generator)), lifted.project(reference)),
            "sample s": 0.0,
        }
    ]

    def add(name: str, draw, seconds: float) -> None:
        x = draw()
        rows.append(
            {
                "method": name,
                "train s": seconds,
                f"W2 ({dim}-D)": metrics.w2(x, reference),
                "W2 (2-D coords)": metrics.w2(lifted.project(x), lifted.project(reference)),
                "sample s": median_seconds(draw, repeats=3),
            }
        )

    ambient, seconds = train_for(
        budget,
        lambda: models.VelocityMLP(dim=dim),
        FlowMatching(couplings.PairSampler(data.Gaussian((0.0,) * dim), lifted)),
        seed=seed,
        lr=lr,
    )
    z0 = torch.randn(1000, dim, generator=generator)
    add("flow matching in R^32 (50 Euler steps)", lambda: solvers.integrate(ambient, z0, 50).x, seconds)

    autoencoder, ae_seconds = train_for(budget / 3, lambda: latent.Autoencoder(dim), latent.Reconstruction(lifted), seed=seed,
                                        lr=3e-3)
    autoencoder.calibrate(lifted.sample(5000, generator))
    autoencoder.requires_grad_(False)
    target = latent.Encoded(lifted, autoencoder)
    flow, flow_seconds = train_for(
        budget - ae_seconds, models.VelocityMLP, FlowMatching(couplings.PairSampler(data.Gaussian((0.0, 0.0)), target)),
        seed=seed, lr=lr,
    )
    z0 = torch.randn(1000, 2, generator=generator)
    add(
        "autoencoder + latent flow matching (50 Euler steps)",
        lambda: latent.sample(flow, autoencoder, z0, 50).x,
        ae_seconds + flow_seconds,
    )
    return rows


def decoding_rows(seed: int, repeats: int = 5, length: int = 64, steps: int = 150) -> list[dict]:
    """Sequential vs Jacobi vs GS-Jacobi decoding of small TARFlows trained on ``nf.Wander`` sequences."""
    rows = []
    for rho in (0.2, 0.9):
        builds = {
            "TARFlow (2 blocks × 1 layer)": lambda: nf.TARFlow(length, 2, blocks=2, width=16, layers=1, heads=2),
            "deep-shallow (2 layers + 2 × 1)": lambda: nf.deep_shallow(length, 2, shallow=2, deep_layers=2, width=16, heads=2),
        }
        for name, build in builds.items():
            toyflow.seed(seed)
            flow = build()
            history = fit(
                flow, nf.MaximumLikelihood(nf.Wander(length, rho), batch_size=64, noise=0.05), steps, lr=3e-3, seed=seed,
                progress=False,
            )
            x = nf.Wander(length, rho).sample(1000, torch.Generator().manual_seed(3))
            with torch.no_grad():
                nll = (
                    -flow.log_prob(x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).mean().item()
                    / length
                )
            for batch in (250, 1000):
                z = torch.randn(batch, length, 2, generator=torch.Generator().manual_seed(1))
                settings = {
                    "sequential": ("sequential", None),
                    "jacobi": ("jacobi", None),
                    "gs-jacobi, groups of 16": ("gs-jacobi", 16),
                }
                seconds, decoded = {key: [] for key in settings}, {}
                with torch.no_grad():
                    for _ in range(repeats):
                        for key, (method, group) in settings.items():
                            start = time.perf_counter()
                            decoded[key] = flow.decode(z, method, group=group, tol=1e-5)
                            seconds[key].append(time.perf_counter() - start)
                median = {key: sorted(t)[len(t) // 2] for key, t in seconds.items()}
                for key in settings:
                    rows.append(
                        {
                            "rho": rho,
                            "model": name,
                            "train s": history.seconds,
                            "NLL / token": nll,
                            "sequences": batch,
                            "method": key,
                            "passes per block": decoded[key].iterations,
                            "wall s": median[key],
                            "speed-up": median["sequential"] / median[key],
                            "largest diff": (decoded[key].x - decoded["sequential"].x).abs().max().item(),
                        }
                    )
    return rows


PARTS = {  # each part: its rows, its identifying columns and the columns summarised over seeds
    "flowmap": (lambda task, args, seed: flow_maps(task, args.budget, args.lr, seed), ("method",),
                ("W2 @1", "W2 @2", "W2 @4", "train s", "sample ms (2,000 pts, 1 NFE)")),
    "blockwise": (lambda task, args, seed: blockwise_rows(task, args.budget, args.lr, seed), ("M", "hidden"),
                  ("W2 @1", "W2 @2", "W2 @4", "W2 @8", "W2 @16", "ms @1", "ms @4", "ms @16")),
    "latent": (lambda task, args, seed: latent_rows(args.budget, args.lr, seed), ("method",),
               ("W2 (32-D)", "W2 (2-D coords)", "sample s")),
    "tarflow": (lambda task, args, seed: decoding_rows(seed), ("rho", "model", "sequences", "method"),
                ("NLL / token", "passes per block", "wall s", "speed-up", "largest diff")),
}


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--budget", type=float, default=30.0, help="training seconds per method (%(default)s)")
    command.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (%(default)s)")
    command.add_argument("--parts", default=",".join(PARTS), help="which parts to run, comma-separated (%(default)s)")
    args, started = parse(command)
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        command.error(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    task = torchcfm_task()
    result = {"settings": vars(args), "floor_w2": task.floor, "iid_floor_w2": task.iid_floor}
    print(f"W2 floors: stratified {task.floor:.3f}, i.i.d. {task.iid_floor:.3f}\n")
    for part in parts:
        rows, keys, values = PARTS[part]
        result[part] = []
        for seed in args.seeds:
            new = [{**row, "seed": seed} for row in rows(task, args, seed)]
            result[part] += new
            print(f"{part}, seed {seed}:\n{plot.markdown_table(new, 4)}\n", flush=True)
        result[f"{part} summary"] = summarise_seeds(result[part], keys, values)
        print(f"{part}, over seeds {args.seeds}:\n{plot.markdown_table(result[f'{part} summary'], 4)}\n", flush=True)
    print("saved", save("fast_" + "_".join(parts), result, started))


if __name__ == "__main__":
    main()
