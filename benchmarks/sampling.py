"""Sampling after training on N(0, I) → moons: the ODE against same-marginal SDEs, BOSS against uniform
steps, FlowTurbo's refiner (trained on the step sizes it is used with) in W2 and wall time, and inversion error,
once per seed (flows, noise and points all drawn from it). Prints each seed's tables, then the median and worst over
the seeds, and writes benchmarks/results/sampling.json. Timings are the best of ``--repeats`` runs on 2,000 points.

    python benchmarks/sampling.py                 # the full run (a few minutes)
    python benchmarks/sampling.py --steps 1000    # a quick look
"""

from __future__ import annotations

import time

import torch
from common import parse, parser, save, summarise_seeds

import toyflow
from toyflow import couplings, data, metrics, models, plot, refine, schedules, sde, solvers
from toyflow.flow_matching import FlowMatching
from toyflow.train import fit


def best_ms(run, repeats: int) -> tuple[solvers.Solution, float]:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return result, 1000 * min(times)


TABLES = {  # each table's identifying columns and the columns summarised over seeds
    "marginals": (("sampler",), ("W2",)),
    "boss": (("flow", "K"), ("W2 uniform", "W2 BOSS")),
    "refiner": (("sampler", "NFE"), ("W2", "ms / 2,000 points")),
    "inversion": (("NFE each way",), ("round trip, euler", "round trip, rf_solver")),
}


def one_seed(seed: int, steps: int, repeats: int) -> dict:
    """Every table for one seed: ``{"floor": W2 floor, "marginals": rows, "boss": rows, "refiner": rows, "inversion": rows}``."""
    toyflow.seed(seed)
    source, target = data.get("gaussian"), data.get("moons")
    flows = {}
    for name, coupling in (("1-RF", couplings.independent), ("OT-CFM", couplings.ExactOT())):
        flows[name] = models.VelocityMLP()
        fit(flows[name], FlowMatching(couplings.PairSampler(source, target, coupling)), steps, lr=2e-3, seed=seed,
            progress=False)
    flow, generator = flows["1-RF"], torch.Generator().manual_seed(seed + 1)
    z0, reference = source.sample(2000, generator), target.sample(2000, generator)
    result = {"floor": metrics.w2(reference, target.sample(2000, generator))}

    ode = solvers.integrate(flow, z0, 100, "heun").x
    marginals = [{"sampler": "ODE, Heun 100 steps (200 NFE)", "W2": metrics.w2(ode, reference)}]
    diffusions = {"constant 1": sde.constant(1.0), "decaying 1.5(1 − t)": sde.decaying(1.5), "VP-equivalent": sde.vp(1.0)}
    for name, g in diffusions.items():
        for sde_steps in (100, 200, 500):
            end = sde.euler_maruyama(flow, z0, sde_steps, g, torch.Generator().manual_seed(seed + 2)).x
            marginals.append({"sampler": f"SDE {name}, {sde_steps} steps", "W2": metrics.w2(end, reference)})
    result["marginals"] = marginals

    probe, boss = source.sample(256, torch.Generator().manual_seed(seed + 3)), []
    for name, v in flows.items():
        cost, fine = schedules.jump_costs(v, probe, fine=100)
        for k in (2, 4, 8):
            grid = fine[schedules.bellman(cost, k)]
            boss.append({"flow": name, "K": k, "W2 uniform": metrics.w2(solvers.integrate(v, z0, k).x, reference),
                         "W2 BOSS": metrics.w2(solvers.integrate(v, z0, grid=grid).x, reference)})
    result["boss"] = boss

    refiner = refine.Refiner(max_gap=0.2)  # trained on steps Δ ~ U(0, 0.2): H1-P2-R2 (Δ = 1/5) and H1-P5-R3 (1/9) fit
    fit(refiner, refine.RefinerObjective(flow, couplings.PairSampler(source, target)), steps // 2, lr=2e-3, seed=seed,
        progress=False)
    samplers = {
        "Euler 4": lambda: solvers.integrate(flow, z0, 4), "Heun 2": lambda: solvers.integrate(flow, z0, 2, "heun"),
        "H1-P2": lambda: refine.flowturbo(flow, None, z0, 1, 2, 0),
        "H1-P2-R2": lambda: refine.flowturbo(flow, refiner, z0, 1, 2, 2),
        "Euler 8": lambda: solvers.integrate(flow, z0, 8), "Heun 4": lambda: solvers.integrate(flow, z0, 4, "heun"),
        "H1-P5-R3": lambda: refine.flowturbo(flow, refiner, z0, 1, 5, 3),
    }
    turbo = []
    for name, run in samplers.items():
        solution, ms = best_ms(run, repeats)
        turbo.append({"sampler": name, "NFE": solution.nfe, "W2": metrics.w2(solution.x, reference), "ms / 2,000 points": ms})
    result["refiner"] = turbo

    inversion = []
    for nfe in (4, 8, 16):
        row = {"NFE each way": nfe}
        for method in ("euler", "rf_solver"):
            back = refine.regenerate(flow, refine.invert(flow, reference, nfe, method).x, nfe, method).x
            row[f"round trip, {method}"] = (back - reference).norm(dim=1).mean().item()
        inversion.append(row)
    result["inversion"] = inversion
    return result


def main() -> None:
    command = parser(__doc__, seeds=[0, 1, 2])
    command.add_argument("--steps", type=int, default=3000, help="training steps of each flow (%(default)s)")
    command.add_argument("--repeats", type=int, default=20, help="timing repeats, the best counts (%(default)s)")
    args, started = parse(command)
    result = {"settings": vars(args), "floor": [], **{key: [] for key in TABLES}}
    for seed in args.seeds:
        tables = one_seed(seed, args.steps, args.repeats)
        result["floor"].append(tables["floor"])
        print(f"\n## seed {seed} (sampling floor: W2 = {tables['floor']:.3f})")
        for key in TABLES:
            result[key] += [{**row, "seed": seed} for row in tables[key]]
            print(f"\n### {key}\n\n{plot.markdown_table(tables[key])}")
    result["summary"] = {key: summarise_seeds(result[key], *TABLES[key]) for key in TABLES}
    print(f"\n## over seeds {args.seeds}")
    for key in TABLES:
        print(f"\n### {key}\n\n{plot.markdown_table(result['summary'][key])}")
    floors = ", ".join(f"{w:.3f}" for w in result["floor"])
    print(f"\nSampling floors: W2 = {floors}; written to {save('sampling', result, started)}")


if __name__ == "__main__":
    main()
