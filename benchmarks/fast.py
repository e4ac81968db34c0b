"""Every way of going fast on torchcfm's task, at equal training time: exact and fine W2 at few NFE, training s,
sampling ms.

- flow maps: data-free flow-map distillation of an OT-CFM teacher (half the budget teacher, half student) next to
  distillation of the same teacher's pairs (made and distilled in the student's half), 2-RF + distillation
  (InstaFlow), MeanFlow and SplitMeanFlow on OT pairs, and the flow-matching baselines sampled with Euler steps, at
  1, 2 and 4 NFE; the number of target samples each method drew;
- blockwise flow matching with M = 1, 2, 4 segments at equal total parameters (independent pairs), at 1 to 16 NFE;
- latent vs ambient flow matching on moons lifted into 32 dimensions: exact W2 on 1,000 points and fine W2 on
  40,000 (random directions, the same for every method), in 32-D and in the original 2D coordinates, with the data's
  own floors;
- TARFlow decoding on 64-token ``nf.Wander`` sequences (weakly dependent tokens, ρ = 0.2, and strongly, ρ = 0.9):
  passes per block, median wall time of sequential, Jacobi and GS-Jacobi decoding taken in turns in one run, the
  speed-up over sequential and the largest difference to it; and STARFlow's deep–shallow TARFlow against the plain
  one (NLL per token), each trained ``--tarflow-budget`` seconds.

Every method trains for ``--budget`` seconds of wall time (``fit(max_seconds=…)``); a pipeline (teacher + student,
2-RF + distillation, autoencoder + latent flow) spends that budget on all its stages, generating pairs included, and
rows give "budget s" and the measured "train s". Exact W2 is on 2,000 samples, fine W2 on 40,000 (common.py). One run
per seed (``--seeds``, the same for every method: the initialisation, the training draws and the evaluation draws of
the latent part). Prints each seed's tables, then the median and worst over the seeds, and writes
benchmarks/results/fast_<parts>.json. Estimated wall times on 2 cores (one thread):

    python benchmarks/fast.py --budget 1 --seeds 0 --parts flowmap,blockwise,latent   # a quick look (about 2 minutes)
    python benchmarks/fast.py --budget 10 --parts blockwise   # one part (about 2 minutes)
    python benchmarks/fast.py   # the full run: about 25 minutes of training and scoring, plus the TARFlow decoding
                                # timings (several minutes per seed, not measured here)
"""

from __future__ import annotations

import time

import torch
from common import (
    FINE_SIZE,
    euler,
    jumps,
    median_seconds,
    parse,
    parser,
    reflow_and_distil,
    save,
    seconds_left,
    summarise_seeds,
    torchcfm_task,
    train_for,
)

from toyflow import blockwise, couplings, data, flowmap, latent, metrics, models, nf, plot, rectify, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.meanflow import MeanFlow, SplitMeanFlow

NFES = (1, 2, 4)


def row(task, method: str, jump, budget: float, seconds: float, drawn: int | str, nfes=NFES) -> dict:
    """Exact and fine W2 of ``jump(x0, k)`` at each NFE ``k`` of ``nfes``, and the milliseconds it takes at 1 NFE."""
    result = {"method": method, "budget s": budget, "train s": seconds, **task.at_steps(jump, nfes)}
    result["sample ms (2,000 pts, 1 NFE)"] = 1e3 * median_seconds(lambda: jump(task.x0, 1), repeats=5)
    result["target samples"] = drawn
    return result


def flow_maps(task, budget: float, lr: float, seed: int) -> list[dict]:
    """The one-step and few-step methods for one seed; every target draw goes through ``Counted``, so each row tells how
    many target samples its method used."""
    counted = flowmap.Counted(task.target)
    ot_pairs = couplings.PairSampler(task.source, counted, couplings.ExactOT())
    rows = []

    counted.drawn = 0
    teacher, teacher_seconds = train_for(budget / 2, models.VelocityMLP, FlowMatching(ot_pairs), seed=seed, lr=lr)
    teacher_drawn = counted.drawn
    rows.append(row(task, "OT-CFM teacher (half budget, Euler)", euler(teacher), budget / 2, teacher_seconds,
                    teacher_drawn))

    counted.drawn = 0
    objective = flowmap.FlowMapDistillation(teacher, task.source)
    student, student_seconds = train_for(budget / 2, lambda: models.VelocityMLP(times=2), objective, seed=seed, lr=lr,
                                         grad_clip=1.0)
    rows.append(row(task, "data-free flow map (teacher + student)", jumps(student), budget,
                    teacher_seconds + student_seconds, f"{teacher_drawn} (teacher) + {counted.drawn}"))

    start = time.perf_counter()  # the teacher's pairs and the distillation share the student's half of the budget
    pairs = rectify.sample_pairs(teacher, task.source.sample(5000, torch.Generator().manual_seed(seed + 7)), steps=25)
    distilled, _ = train_for(seconds_left(budget / 2, start), models.VelocityMLP, rectify.Distillation(pairs),
                             seed=seed, lr=1e-3)
    rows.append(row(task, "teacher's pairs + distillation", lambda x0, k: rectify.one_step(distilled)(x0), budget,
                    teacher_seconds + time.perf_counter() - start, f"{teacher_drawn} (teacher) + 0", nfes=(1,)))

    for name, cls in (("MeanFlow", MeanFlow), ("SplitMeanFlow", SplitMeanFlow)):
        counted.drawn = 0
        model, seconds = train_for(budget, lambda: models.VelocityMLP(times=2), cls(ot_pairs), seed=seed, lr=lr,
                                   grad_clip=1.0)
        rows.append(row(task, f"{name} (OT pairs)", jumps(model), budget, seconds, counted.drawn))

    counted.drawn = 0
    instaflow, seconds = reflow_and_distil(task.source, counted, budget, num_pairs=5000, pair_steps=25, seed=seed)
    rows.append(row(task, "2-RF + distillation (InstaFlow)", lambda x0, k: instaflow(x0), budget, seconds,
                    counted.drawn, nfes=(1,)))

    for name, coupling in (("1-RF", couplings.independent), ("OT-CFM", couplings.ExactOT())):
        counted.drawn = 0
        objective = FlowMatching(couplings.PairSampler(task.source, counted, coupling))
        model, seconds = train_for(budget, models.VelocityMLP, objective, seed=seed, lr=lr)
        rows.append(row(task, f"{name} (Euler)", euler(model), budget, seconds, counted.drawn))
    return rows


def blockwise_rows(task, budget: float, lr: float, seed: int, nfes=(1, 2, 4, 8, 16)) -> list[dict]:
    """Exact and fine W2 and sampling ms against NFE for M = 1, 2, 4 segments at the parameters of one
    VelocityMLP(hidden=128)."""
    parameters = sum(p.numel() for p in models.VelocityMLP().parameters())
    pairs = couplings.PairSampler(task.source, task.target)
    rows, trained = [], {}
    for segments in (1, 2, 4):
        hidden = blockwise.hidden_for_parameters(parameters, segments)

        def build(segments=segments, hidden=hidden):
            return blockwise.Blockwise(segments, hidden=hidden)

        trained[segments], seconds = train_for(budget, build, FlowMatching(pairs), seed=seed, lr=lr)
        model = trained[segments]
        rows.append({"M": segments, "hidden": hidden, "parameters": sum(p.numel() for p in model.parameters()),
                     "budget s": budget, "train s": seconds, **task.at_nfe(model, nfes)})
    timings: dict[tuple[int, int], list[float]] = {}
    for _ in range(7):  # in turns, so a busy CPU slows every M alike
        for segments, model in trained.items():
            for k in nfes:
                draw = lambda model=model, k=k: solvers.integrate(model, task.x0, k)  # noqa: E731
                timings.setdefault((segments, k), []).append(median_seconds(draw, repeats=1))
    for result in rows:
        result.update({f"ms @ {k}": 1e3 * sorted(timings[result["M"], k])[3] for k in nfes})
    return rows


def latent_rows(budget: float, lr: float, seed: int, dim: int = 32) -> list[dict]:
    """Ambient flow matching in ``dim`` dimensions against autoencoder + latent flow matching, equal training time (the
    autoencoder's training and calibration count). Exact W2 on 1,000 points, fine W2 on ``FINE_SIZE``, each in ``dim``
    dimensions and in the 2D coordinates of the moons; the first row is the data's own floor."""
    lifted = latent.Lifted("moons", dim=dim)
    generator = torch.Generator().manual_seed(seed + 1)
    reference, reference_fine = lifted.sample(1000, generator), lifted.sample(FINE_SIZE, generator)

    def fine(x, y):  # in dim > 2 fine_w2 draws random directions: the same ones for every method and the floor
        return metrics.fine_w2(x, y, generator=torch.Generator().manual_seed(0))

    def fine_2d(x, y):
        return metrics.fine_w2(lifted.project(x), lifted.project(y))

    def scores(x, x_fine) -> dict[str, float]:
        return {f"W2 ({dim}-D)": metrics.w2(x, reference),
                "W2 (2-D coords)": metrics.w2(lifted.project(x), lifted.project(reference)),
                f"fine W2 ({dim}-D)": fine(x_fine, reference_fine),
                "fine W2 (2-D coords)": fine_2d(x_fine, reference_fine)}

    rows = [{"method": "data (floor)", "budget s": 0.0, "train s": 0.0,
             **scores(lifted.sample(1000, generator), lifted.sample(FINE_SIZE, generator)), "sample s": 0.0}]
    z0 = torch.randn(1000, dim, generator=generator)
    z0_fine = torch.randn(FINE_SIZE, dim, generator=generator)

    def add(name: str, draw, seconds: float) -> None:
        """``draw(z0)`` on ``z0`` and ``z0_fine`` (each of ``dim`` numbers; a latent sampler uses the first two)."""
        with torch.no_grad():
            rows.append({"method": name, "budget s": budget, "train s": seconds, **scores(draw(z0), draw(z0_fine)),
                         "sample s": median_seconds(lambda: draw(z0), repeats=3)})

    ambient, seconds = train_for(
        budget, lambda: models.VelocityMLP(dim=dim),
        FlowMatching(couplings.PairSampler(data.Gaussian((0.0,) * dim), lifted)), seed=seed, lr=lr,
    )
    add(f"flow matching in R^{dim} (50 Euler steps)", lambda z: solvers.integrate(ambient, z, 50).x, seconds)

    start = time.perf_counter()
    autoencoder, _ = train_for(budget / 3, lambda: latent.Autoencoder(dim), latent.Reconstruction(lifted), seed=seed,
                               lr=3e-3)
    autoencoder.calibrate(lifted.sample(5000, generator))
    autoencoder.requires_grad_(False)
    target = latent.Encoded(lifted, autoencoder)
    flow, _ = train_for(seconds_left(budget, start), models.VelocityMLP,
                        FlowMatching(couplings.PairSampler(data.Gaussian((0.0, 0.0)), target)), seed=seed, lr=lr)
    add("autoencoder + latent flow matching (50 Euler steps)",
        lambda z: latent.sample(flow, autoencoder, z[:, :2], 50).x, time.perf_counter() - start)
    return rows


def decoding_rows(budget: float, seed: int, repeats: int = 5, length: int = 64) -> list[dict]:
    """Sequential vs Jacobi vs GS-Jacobi decoding of small TARFlows trained ``budget`` seconds on ``nf.Wander``
    sequences."""
    rows = []
    for rho in (0.2, 0.9):
        builds = {
            "TARFlow (2 blocks × 1 layer)": lambda: nf.TARFlow(length, 2, blocks=2, width=16, layers=1, heads=2),
            "deep-shallow (2 layers + 2 × 1)": lambda: nf.deep_shallow(length, 2, shallow=2, deep_layers=2, width=16,
                                                                       heads=2),
        }
        for name, build in builds.items():
            flow, seconds = train_for(budget, build, nf.MaximumLikelihood(nf.Wander(length, rho), batch_size=64,
                                                                          noise=0.05), seed=seed, lr=3e-3)
            x = nf.Wander(length, rho).sample(1000, torch.Generator().manual_seed(3))
            with torch.no_grad():
                noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
                nll = -flow.log_prob(noisy).mean().item() / length
            for batch in (250, 1000):
                z = torch.randn(batch, length, 2, generator=torch.Generator().manual_seed(1))
                settings = {
                    "sequential": ("sequential", None),
                    "jacobi": ("jacobi", None),
                    "gs-jacobi, groups of 16": ("gs-jacobi", 16),
                }
                timings, decoded = {key: [] for key in settings}, {}
                with torch.no_grad():
                    for _ in range(repeats):
                        for key, (method, group) in settings.items():
                            start = time.perf_counter()
                            decoded[key] = flow.decode(z, method, group=group, tol=1e-5)
                            timings[key].append(time.perf_counter() - start)
                median = {key: sorted(t)[len(t) // 2] for key, t in timings.items()}
                for key in settings:
                    rows.append({
                        "rho": rho, "model": name, "budget s": budget, "train s": seconds, "NLL / token": nll,
                        "sequences": batch, "method": key, "passes per block": decoded[key].iterations,
                        "wall s": median[key], "speed-up": median["sequential"] / median[key],
                        "largest diff": (decoded[key].x - decoded["sequential"].x).abs().max().item(),
                    })
    return rows


def at(nfes) -> tuple[str, ...]:
    """The quality columns at each of ``nfes``: ``("W2 @ 1", "fine W2 @ 1", …)``."""
    return tuple(f"{metric} @ {k}" for k in nfes for metric in ("W2", "fine W2"))


PARTS = {  # each part: its rows, its identifying columns and the columns summarised over seeds
    "flowmap": (lambda task, args, seed: flow_maps(task, args.budget, args.lr, seed), ("method",),
                (*at(NFES), "sample ms (2,000 pts, 1 NFE)")),
    "blockwise": (lambda task, args, seed: blockwise_rows(task, args.budget, args.lr, seed), ("M", "hidden"),
                  (*at((1, 2, 4, 8, 16)), "ms @ 1", "ms @ 4", "ms @ 16")),
    "latent": (lambda task, args, seed: latent_rows(args.budget, args.lr, seed), ("method",),
               ("W2 (32-D)", "W2 (2-D coords)", "fine W2 (32-D)", "fine W2 (2-D coords)", "sample s")),
    "tarflow": (lambda task, args, seed: decoding_rows(args.tarflow_budget, seed),
                ("rho", "model", "sequences", "method"),
                ("NLL / token", "passes per block", "wall s", "speed-up", "largest diff")),
}


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--budget", type=float, default=30.0, help="training seconds per method (%(default)s)")
    command.add_argument("--tarflow-budget", type=float, default=10.0,
                         help="training seconds of each TARFlow of the decoding part (%(default)s)")
    command.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (%(default)s)")
    command.add_argument("--parts", default=",".join(PARTS), help="which parts to run, comma-separated (%(default)s)")
    args, started = parse(command)
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        command.error(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    task = torchcfm_task()
    result = {"settings": vars(args), **task.floors()}
    print(task.describe_floors())
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
