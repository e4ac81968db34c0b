"""Sampling after training on N(0, I) → moons: the ODE against same-marginal SDEs, BOSS against uniform
steps, FlowTurbo's refiner (trained on the step sizes it is used with) in W2 and wall time, and inversion error,
once per seed (flows, noise and points all drawn from it).

The two flows, 1-RF and OT-CFM, train for the same wall-time budget ``--budget`` (``fit(max_seconds=…)``), the
refiner for half of it. Exact W2 is on 2,000 points against 2,000 i.i.d. moons; the few-step tables (BOSS, refiner)
also give fine W2 (``metrics.fine_w2``) on 40,000 points against 40,000 i.i.d. moons, with its own floor
(``metrics.floor``). The ODE/SDE table keeps exact W2 only: at 100 to 500 steps, fine W2 on 40,000 points would cost
about four minutes per seed. Prints each seed's tables, then the median and worst over the seeds, and writes
benchmarks/results/sampling.json. Timings are the best of ``--repeats`` runs on 2,000 points. Estimated wall times
on 2 cores (one thread):

    python benchmarks/sampling.py --budget 1 --seeds 0 --repeats 2   # a quick look (about 2 minutes)
    python benchmarks/sampling.py                                    # the full run (about 6 minutes)
"""

from __future__ import annotations

import time

import torch
from common import FINE_SIZE, parse, parser, save, summarise_seeds

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
    "boss": (("flow", "K"), ("W2 uniform", "W2 BOSS", "fine W2 uniform", "fine W2 BOSS")),
    "refiner": (("sampler", "NFE"), ("W2", "fine W2", "ms / 2,000 points")),
    "inversion": (("NFE each way",), ("round trip, euler", "round trip, rf_solver")),
}


def one_seed(seed: int, budget: float, repeats: int) -> dict:
    """Every table for one seed: ``{"floor": W2 floor, "fine_floor": fine W2 floor, "marginals": rows, "boss": rows,
    "refiner": rows, "inversion": rows}``."""
    toyflow.seed(seed)
    source, target = data.get("gaussian"), data.get("moons")
    flows = {}
    for name, coupling in (("1-RF", couplings.independent), ("OT-CFM", couplings.ExactOT())):
        flows[name] = models.VelocityMLP()
        fit(flows[name], FlowMatching(couplings.PairSampler(source, target, coupling)), None, max_seconds=budget,
            lr=2e-3, seed=seed, progress=False)
    flow, generator = flows["1-RF"], torch.Generator().manual_seed(seed + 1)
    z0, reference = source.sample(2000, generator), target.sample(2000, generator)
    result = {"floor": metrics.w2(reference, target.sample(2000, generator))}
    z0_fine, reference_fine = source.sample(FINE_SIZE, generator), target.sample(FINE_SIZE, generator)
    result["fine_floor"] = metrics.floor(metrics.fine_w2, target, FINE_SIZE, generator=generator)

    def quality(sample, suffix: str = "") -> dict[str, float]:
        """Exact and fine W2 of ``sample(z) -> x1``, run on ``z0`` and ``z0_fine``."""
        return {f"W2{suffix}": metrics.w2(sample(z0), reference),
                f"fine W2{suffix}": metrics.fine_w2(sample(z0_fine), reference_fine)}

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
            boss.append({"flow": name, "K": k, **quality(lambda z, v=v, k=k: solvers.integrate(v, z, k).x, " uniform"),
                         **quality(lambda z, v=v, grid=grid: solvers.integrate(v, z, grid=grid).x, " BOSS")})
    result["boss"] = boss

    refiner = refine.Refiner(max_gap=0.2)  # trained on steps Δ ~ U(0, 0.2): H1-P2-R2 (Δ = 1/5) and H1-P5-R3 (1/9) fit
    fit(refiner, refine.RefinerObjective(flow, couplings.PairSampler(source, target)), None, max_seconds=budget / 2,
        lr=2e-3, seed=seed, progress=False)
    samplers = {
        "Euler 4": lambda z: solvers.integrate(flow, z, 4), "Heun 2": lambda z: solvers.integrate(flow, z, 2, "heun"),
        "H1-P2": lambda z: refine.flowturbo(flow, None, z, 1, 2, 0),
        "H1-P2-R2": lambda z: refine.flowturbo(flow, refiner, z, 1, 2, 2),
        "Euler 8": lambda z: solvers.integrate(flow, z, 8), "Heun 4": lambda z: solvers.integrate(flow, z, 4, "heun"),
        "H1-P5-R3": lambda z: refine.flowturbo(flow, refiner, z, 1, 5, 3),
    }
    turbo = []
    for name, run in samplers.items():
        solution, ms = best_ms(lambda run=run: run(z0), repeats)
        turbo.append({"sampler": name, "NFE": solution.nfe, **quality(lambda z, run=run: run(z).x),
                      "ms / 2,000 points": ms})
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
    command.add_argument("--budget", type=float, default=10.0,
                         help="training seconds of each flow; the refiner gets half (%(default)s)")
    command.add_argument("--repeats", type=int, default=20, help="timing repeats, the best counts (%(default)s)")
    args, started = parse(command)
    result = {"settings": vars(args), "floor": [], "fine_floor": [], **{key: [] for key in TABLES}}
    for seed in args.seeds:
        tables = one_seed(seed, args.budget, args.repeats)
        for floor in ("floor", "fine_floor"):
            result[floor].append(tables[floor])
        print(f"\n## seed {seed} (sampling floors: W2 = {tables['floor']:.3f} at 2,000 points, "
              f"fine W2 = {tables['fine_floor']:.4f} at {FINE_SIZE:,})")
        for key in TABLES:
            result[key] += [{**row, "seed": seed} for row in tables[key]]
            print(f"\n### {key}\n\n{plot.markdown_table(tables[key])}")
    result["summary"] = {key: summarise_seeds(result[key], *TABLES[key]) for key in TABLES}
    print(f"\n## over seeds {args.seeds}")
    for key in TABLES:
        print(f"\n### {key}\n\n{plot.markdown_table(result['summary'][key])}")
    floors = ", ".join(f"{w:.3f}" for w in result["floor"])
    fine_floors = ", ".join(f"{w:.4f}" for w in result["fine_floor"])
    print(f"\nSampling floors: W2 = {floors}; fine W2 = {fine_floors}; written to {save('sampling', result, started)}")


if __name__ == "__main__":
    main()
