"""Does the SDE sampler keep every intermediate marginal? The Gaussian case, before and after issue 20 (item 1).

From ``N(0, I)`` to ``N(m, s²I)`` (m = (2, −1), s = 0.5) the marginal at time t is ``N(t·m, σ_t² I)`` with
``σ_t² = (1 − t)² + t²s²``, and the velocity is known exactly (``toyflow.closed_form``). For each diffusion schedule
and step count the same source points and the same Brownian draws go through

- the old step, plain Euler–Maruyama ``x + dt·(v + ½g²s) + g·√dt·ε`` (kept below only to show "before");
- the new step, :func:`toyflow.sde.exponential_step` (what ``sde.euler_maruyama``, ``sde.transition``, search and
  Flow-GRPO use now): ``x + dt·v − (1 − e^{−κ})·(x − t·v) + √((1 − t)(1 − e^{−2κ}))·ε``, ``κ = g²dt/(2(1 − t))``;
- the Euler ODE (``g = 0``), whose own discretisation error is the yardstick.

The table gives the sample std (averaged over the two coordinates) at every grid time; the summary gives each
sampler's worst relative error ``|std/σ_t − 1|`` over the grid times. The last step, onto t = 1, is the noiseless jump in
all three. A last summary does the same on Kim et al.'s VP path (``sde.vp_path()``, the flow converted by ``sde.convert``,
``g = sde.quadratic(3)``), whose marginal is ``N(b·m, (b²s² + a²) I)``, started from the exact marginal at τ = 0.
Writes benchmarks/results/sde_marginals.json.

    python benchmarks/sde_marginals.py                 # 10 and 20 steps, 200,000 samples (a few seconds)
    python benchmarks/sde_marginals.py --steps 10 20 100 200
"""

from __future__ import annotations

import torch
from common import parse, parser, save

from toyflow import _base, plot, sde, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian(mean=(2.0, -1.0), std=0.5)
SCHEDULES = {"constant(1)": sde.constant(1.0), "decaying(1.5)": sde.decaying(1.5), "vp(1)": sde.vp(1.0),
             "vp(0.5)": sde.vp(0.5)}


def old_euler_maruyama(v, x0: torch.Tensor, steps: int, g: sde.Diffusion, generator: torch.Generator) -> torch.Tensor:
    """REFERENCE ONLY — the sampler before issue 20: the plain Euler–Maruyama step at every step but the last.
    Returns the path ``(steps + 1, n, d)``."""
    grid, x, states = solvers.time_grid(steps, dtype=x0.dtype), x0, [x0]
    for t, t_next in zip(grid[:-1], grid[1:]):
        time, dt = t.expand(len(x)), t_next - t
        velocity = v(x, time)
        if t_next >= 1:
            x = x + dt * velocity
        else:
            noise = _base.randn(x.shape, generator, dtype=x.dtype)
            score = (t * velocity - x) / (1 - t)
            x = x + dt * (velocity + 0.5 * g(time)[:, None] ** 2 * score) + g(time)[:, None] * dt.sqrt() * noise
        states.append(x)
    return torch.stack(states)


def stds(path: torch.Tensor) -> list[float]:
    """The sample std at every grid time after the start, averaged over the coordinates."""
    return path[1:].std(1).mean(1).tolist()


def worst(values: list[float], exact: list[float]) -> float:
    """The largest relative error ``|std/σ_t − 1|`` over the grid times."""
    return max(abs(v / e - 1) for v, e in zip(values, exact))


def vp_path_errors(x0: torch.Tensor, args) -> list[dict]:
    """Worst relative std error of the converted SDE and of the converted Euler ODE on the VP path, per step count."""
    path, m = sde.vp_path(), torch.tensor(CASE.mean, dtype=torch.float64)
    x1 = _base.randn(x0.shape, torch.Generator().manual_seed(args.seed + 2), dtype=torch.float64) * CASE.std + m
    summary = []
    for steps in args.steps:
        tau = solvers.time_grid(steps, dtype=torch.float64)
        start = path.beta(tau[:1]) * x1 + path.alpha(tau[:1]) * x0
        exact = ((path.beta(tau[1:]) * CASE.std) ** 2 + path.alpha(tau[1:]) ** 2).sqrt().tolist()
        noise = torch.Generator().manual_seed(args.seed + 1)
        new = stds(sde.euler_maruyama(CASE.velocity, start, steps, sde.quadratic(3.0), noise, return_path=True, path=path).path)
        ode = stds(solvers.integrate(sde.convert(CASE.velocity, path), start, steps, return_path=True).path)
        summary.append({"schedule": "quadratic(3), VP path", "steps": steps, "new step": worst(new, exact),
                        "ODE (Euler)": worst(ode, exact)})
    return summary


def main() -> None:
    command = parser(__doc__)
    command.add_argument("--steps", type=int, nargs="+", default=[10, 20], help="step counts (%(default)s)")
    command.add_argument("--samples", type=int, default=200_000, help="samples, float64 (%(default)s)")
    command.add_argument("--seed", type=int, default=0, help="source points and Brownian draws (%(default)s)")
    args, started = parse(command)

    x0 = _base.randn((args.samples, 2), torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    rows, summary = [], []
    for steps in args.steps:
        grid = solvers.time_grid(steps, dtype=torch.float64)[1:]
        exact = CASE.sigma(grid).tolist()
        ode = stds(solvers.integrate(CASE.velocity, x0, steps, return_path=True).path)
        for name, g in SCHEDULES.items():
            old = stds(old_euler_maruyama(CASE.velocity, x0, steps, g, torch.Generator().manual_seed(args.seed + 1)))
            new = stds(sde.euler_maruyama(CASE.velocity, x0, steps, g, torch.Generator().manual_seed(args.seed + 1),
                                          return_path=True).path)
            rows += [{"schedule": name, "steps": steps, "t": t, "exact std": e, "old step (Euler–Maruyama)": o,
                      "new step (exponential)": n, "ODE (Euler)": d}
                     for t, e, o, n, d in zip(grid.tolist(), exact, old, new, ode)]
            summary.append({"schedule": name, "steps": steps, "worst relative std error, old step": worst(old, exact),
                            "new step": worst(new, exact), "ODE (Euler)": worst(ode, exact)})
    print(plot.markdown_table(rows, 3), "\n")
    print("Worst relative error of the std, |std/σ_t − 1|, over the grid times (t = 1 included):\n")
    print(plot.markdown_table(summary, 3), "\n")
    vp_summary = vp_path_errors(x0, args)
    print("The same on the VP path (interpolant conversion, g = 3(1 − τ)²):\n")
    print(plot.markdown_table(vp_summary, 3), "\n")
    print("saved", save("sde_marginals", {"case": {"mean": CASE.mean, "std": CASE.std}, "settings": vars(args),
                                           "rows": rows, "summary": summary, "vp path": vp_summary}, started))


if __name__ == "__main__":
    main()
