"""Normalizing flows: NLL against training time on 8 gaussians and moons, and TARFlow's decoding methods.

Every model trains for each wall-time budget (steps set from a measured step time) and is scored on
5,000 held-out points in nats per 2D point; on 8 gaussians, whose density is known, also by its gap
to the true NLL. The flow-matching CNF's likelihood is exact too (``metrics.cnf_log_prob``). With
zuko installed (``pip install -e ".[bench]"``), zuko's neural spline flow runs in the same process.
The last table decodes a TARFlow trained on toy curves sequentially, by Jacobi and by GS-Jacobi.

    python benchmarks/nf.py                       # the full run (about 15 minutes on 2 cores)
    python benchmarks/nf.py --budgets 10 --tarflow-steps 200    # a quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import math

import torch
from common import median_seconds, save
from torch import nn
from tqdm.auto import tqdm

import toyflow
from toyflow import couplings, data, metrics, models, nf, plot
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit

EVAL_SIZE = 5000


class ZukoNSF(nn.Module):
    """zuko's neural spline flow (Durkan et al. 2019) behind toyflow's ``log_prob`` API, so MaximumLikelihood trains it.

    zuko's splines act on ``[−5, 5]`` (identity outside), and the data reach a radius of about 7, so the flow
    models ``x / 4``: ``log p(x) = log p_NSF(x / 4) − 2 log 4``, still the exact density of ``x``.
    """

    scale = 4.0

    def __init__(self):
        super().__init__()
        import zuko

        self.flow = zuko.flows.NSF(features=2, transforms=3, hidden_features=(64, 64))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x / self.scale) - x.shape[1] * math.log(self.scale)


def recipes(target: data.Distribution) -> dict:
    """``{name: (build, objective, lr, log_prob)}``: the NF recipes by maximum likelihood, the CNF by flow matching."""
    source = data.get("gaussian")
    likelihood = nf.MaximumLikelihood(target, batch_size=1024)
    chosen = {
        "RealNVP (24 × 48)": (lambda: nf.RealNVP(layers=24, hidden=48), likelihood, 3e-3, lambda m: m.log_prob),
        "MAF (24 × 48)": (lambda: nf.MAF(layers=24, hidden=48), likelihood, 3e-3, lambda m: m.log_prob),
        "CNF (flow matching)": (models.VelocityMLP, FlowMatching(couplings.PairSampler(source, target)), 2e-3,
                                lambda m: lambda x: metrics.cnf_log_prob(m, x, source.log_prob)),
    }
    if importlib.util.find_spec("zuko") is not None:
        chosen["zuko NSF"] = (ZukoNSF, likelihood, 3e-3, lambda m: m.log_prob)
    return chosen


def nll_against_time(name: str, target: data.Distribution, budgets: list[float]) -> list[dict]:
    """Train every recipe for every budget; NLL on held-out points and, where the density is known, the gap to it."""
    x = target.sample(EVAL_SIZE, torch.Generator().manual_seed(123))
    true_nll = -target.log_prob(x).mean().item() if target.has_log_prob else None
    rows = [{"data": name, "model": "true density", "steps": 0, "train s": 0.0, "NLL": true_nll, "gap": 0.0}] if true_nll else []
    for model_name, (build, objective, lr, log_prob) in recipes(target).items():
        toyflow.seed(0)
        seconds_per_step = fit(build(), objective, 50, lr=lr, progress=False).seconds / 50
        for budget in tqdm(budgets, desc=f"{model_name} on {name}"):
            toyflow.seed(0)
            model = build()
            steps = max(100, int(budget / seconds_per_step))
            history = fit(model, objective, steps, lr=lr, progress=False)
            with torch.no_grad():
                nll = -log_prob(model)(x).mean().item()
            rows.append({"data": name, "model": model_name, "steps": steps, "train s": history.seconds, "NLL": nll,
                         "gap": nll - true_nll if true_nll is not None else "—"})
    return rows


def tarflow_decoding(steps: int, repeats: int) -> tuple[float, list[dict]]:
    """Train a small TARFlow on 12-point curves, then invert it for 1,000 latents with each method: training seconds, rows."""
    curves = nf.Curves(length=12)
    toyflow.seed(0)
    flow = nf.TARFlow(tokens=12, blocks=4, width=32, layers=1)
    history = fit(flow, nf.MaximumLikelihood(curves, batch_size=128, noise=0.05), steps, lr=3e-3, progress=False)
    z = torch.randn(1000, 12, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = flow.decode(z, "sequential").x
        rows = []
        for method, group in (("sequential", None), ("jacobi", None), ("gs-jacobi", 2), ("gs-jacobi", 3), ("gs-jacobi", 6)):
            decoded = flow.decode(z, method, group=group, tol=1e-4)
            rows.append({"method": method if group is None else f"{method} ({group})", "passes per block": decoded.iterations,
                         "ms": 1e3 * median_seconds(lambda m=method, g=group: flow.decode(z, m, group=g, tol=1e-4), repeats),
                         "max |x − x_seq|": (decoded.x - reference).abs().max().item()})
    return history.seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=float, nargs="+", default=[15.0, 50.0],
                        help="training seconds per model; the largest leaves a margin under the 60 s goal (%(default)s)")
    parser.add_argument("--tarflow-steps", type=int, default=600, help="TARFlow training steps; 0 skips it (%(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each decoding timing, medians reported (%(default)s)")
    args = parser.parse_args()

    result = {"threads": torch.get_num_threads(), "eval_size": EVAL_SIZE, "nll": []}
    for name in ("8gaussians", "moons"):
        result["nll"] += nll_against_time(name, data.get(name), args.budgets)
    print(plot.markdown_table(result["nll"]), "\n")
    gaps = [row for row in result["nll"] if row["data"] == "8gaussians" and row["model"] != "true density"]
    for label, names, goal in (("best toyflow NF", ("RealNVP (24 × 48)", "MAF (24 × 48)"), 0.10),
                               ("CNF", ("CNF (flow matching)",), 0.05)):
        best = min((row for row in gaps if row["model"] in names and row["train s"] <= 60), key=lambda r: r["gap"], default=None)
        if best is not None:
            verdict = "meets" if best["gap"] <= goal else "misses"
            print(f"{label} on 8gaussians within 60 s: gap {best['gap']:.3f} nats ({best['model']}, {best['train s']:.1f} s) "
                  f"{verdict} the goal <= {goal}")
    if args.tarflow_steps:
        result["tarflow_train_s"], result["tarflow_decoding"] = tarflow_decoding(args.tarflow_steps, args.repeats)
        print(f"\nTARFlow (4 blocks, width 32) trained {args.tarflow_steps} steps in {result['tarflow_train_s']:.1f} s; "
              "decoding 1,000 curves of 12 points:")
        print(plot.markdown_table(result["tarflow_decoding"], 4))
    print("saved", save("nf", result))


if __name__ == "__main__":
    main()
