"""Rectified flow → reflow → one-step distillation on torchcfm's task, against torchcfm's OT-CFM.

The pipeline: 1-RF (independent pairs) → 2-RF on 1-RF's rectified pairs (warm start; optionally Lee et al.'s
U-shaped times and pseudo-Huber loss) → one-step distillation started from the 2-RF, on the 2-RF's own pairs
("own", InstaFlow's recipe) or on the pairs the 2-RF was trained on ("1-RF"). Every stage is timed; W2 is exact
on 2,000 samples against the stratified reference (benchmarks/common.py). Prints Markdown tables and writes
benchmarks/results/reflow.json. With torchcfm installed, its OT-CFM recipe runs in the same process.

    python benchmarks/reflow.py                          # the full run (a few minutes)
    python benchmarks/reflow.py --steps 2000 --torchcfm-steps 0
"""

from __future__ import annotations

import copy
import time

import torch
from common import parse, parser, save, summarise_seeds, torchcfm_available, torchcfm_task, train_torchcfm
from tqdm.auto import tqdm

from toyflow import metrics, models, paths, plot, rectify


def pipeline(task, steps: int, pairs: int, lee: bool, seed: int) -> list[dict]:
    """1-RF → 2-RF → distillation; one row per stage with its own and the cumulative training seconds."""
    torch.manual_seed(seed)
    options = dict(time=paths.UShapedTime(4.0), loss="pseudo_huber") if lee else {}
    first = rectify.rectified_flow(task.source, task.target, rounds=1, steps=steps, model=models.VelocityMLP(), seed=seed,
                                   progress=False, lr=2e-3)[0]
    generator = torch.Generator().manual_seed(seed + 100)
    start = time.perf_counter()
    training_pairs = rectify.sample_pairs(first.model, task.source.sample(pairs, generator))
    pair_seconds = time.perf_counter() - start
    two_rf = copy.deepcopy(first.model)  # warm start
    history = rectify.reflow(two_rf, training_pairs, steps, seed=seed + 1, progress=False, lr=2e-3, **options)
    rows = [{"stage": "1-RF", "stage s": first.history.seconds, **metrics.flow_summary(first.model, task.x0, task.x1)},
            {"stage": "2-RF" + (" (Lee et al.)" if lee else ""), "stage s": history.seconds + pair_seconds,
             **metrics.flow_summary(two_rf, task.x0, task.x1)}]
    own_pairs = rectify.sample_pairs(two_rf, task.source.sample(pairs, generator))
    for name, distill_pairs in (("own", own_pairs), ("1-RF", training_pairs)):
        student = copy.deepcopy(two_rf)
        history = rectify.distill(student, distill_pairs, steps, seed=seed + 2, progress=False, lr=2e-3)
        rows.append({"stage": f"+ distillation ({name} pairs)", "stage s": history.seconds,
                     "W2 @1": task.score(rectify.one_step(student)(task.x0))})
    for row in rows:
        row["seed"] = seed
    return rows


def torchcfm_ot_cfm(task, steps: int) -> dict:
    """torchcfm's OT-CFM tutorial recipe: exact minibatch OT, σ = 0.1, in their training loop (``common.train_torchcfm``)."""
    from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

    velocity, seconds = train_torchcfm(ExactOptimalTransportConditionalFlowMatcher(sigma=0.1), steps, "torchcfm OT-CFM")
    return {"stage": f"torchcfm OT-CFM ({steps} steps)", "stage s": seconds,
            **{f"W2 @{k}": w for k, w in metrics.w2_by_nfe(velocity, task.x0, task.x1, (1, 2, 4, 8, 100)).items()}}


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--steps", type=int, default=5000, help="training steps of each stage (%(default)s)")
    command.add_argument("--pairs", type=int, default=20000, help="rectified pairs per reflow/distillation (%(default)s)")
    command.add_argument("--no-lee", action="store_true", help="train the 2-RF with uniform times and the L2 loss")
    command.add_argument("--torchcfm-steps", type=int, nargs="*", default=[2000, 20000],
                        help="OT-CFM runs of torchcfm (needs the bench extra); none to skip (%(default)s)")
    args, started = parse(command)

    task = torchcfm_task()
    result = {"task": "8gaussians -> moons (torchcfm)", "eval_size": len(task.x1), "floor_w2": task.floor,
              "iid_floor_w2": task.iid_floor, "threads": torch.get_num_threads(), "settings": vars(args), "rows": []}
    for seed in tqdm(args.seeds, desc="pipelines"):
        rows = pipeline(task, args.steps, args.pairs, not args.no_lee, seed)
        result["rows"] += rows
        total = sum(row["stage s"] for row in rows[:3])
        straighter = rows[1]["straightness"] / rows[0]["straightness"]
        print(f"seed {seed}: 1-RF → 2-RF → distillation trained in {total:.1f} s; "
              f"straightness(2-RF)/straightness(1-RF) = {straighter:.4f}")
    if torchcfm_available():
        result["rows"] += [torchcfm_ot_cfm(task, steps) for steps in args.torchcfm_steps]
    result["summary"] = summarise_seeds(result["rows"], ("stage",), ("W2 @1", "straightness"))
    print(plot.markdown_table(result["rows"], 3), "\n")
    print(plot.markdown_table(result["summary"], 3))
    print(f"\nW2 floors: two stratified reference sets {task.floor:.3f}; i.i.d. target draws {task.iid_floor:.3f}")
    print("saved", save("reflow", result, started))


if __name__ == "__main__":
    main()
