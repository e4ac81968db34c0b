"""Command line: ``python -m toyflow COMMAND`` (or the ``toyflow`` script). ``--help`` on each command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import couplings, data, metrics, rectify, solvers
from .flow_matching import FlowMatching
from .models import VelocityMLP
from .train import fit

COUPLINGS = {
    "independent": lambda: couplings.independent,
    "ot": couplings.ExactOT,
    "sinkhorn": lambda: couplings.SinkhornOT(reg=1.0),
    "wcfm": lambda: couplings.GibbsWeighted(eps=2.0),
}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def _output_folder(out: Path) -> Path:
    """Create ``--out`` and check a file can be written there, before any training (a one-line error if not)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".toyflow-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"error: --out {out} cannot be written ({error.strerror or error}); choose another folder") from None
    return out


DATA_SYNTAX = (f"one of {', '.join(sorted(set(data.REGISTRY) - {'text'}))}; or text:TEXT (points on the letters, e.g. "
               "text:RF) or image:PATH (points on a picture's dark pixels, e.g. image:star.png)")


def _label(spec: str) -> str:
    """A data set's name for a figure title: an image by its file name, not its whole path."""
    name, colon, value = spec.partition(":")
    return f"image:{Path(value).name}" if name == "image" and colon else spec


def _dataset(spec: str) -> str:
    """Check a ``--source``/``--target`` value by building it (``data.from_spec``), so a bad name, an empty text or a
    missing picture is a one-line error before any training; the value itself stays a string."""
    name = spec.partition(":")[0]
    if name not in data.REGISTRY and name not in data.FROM_INPUT:
        raise argparse.ArgumentTypeError(f"invalid choice: {spec!r} (choose {DATA_SYNTAX})")
    try:
        data.from_spec(spec)
    except (ValueError, TypeError, OSError) as error:
        raise argparse.ArgumentTypeError(f"{spec!r}: {error}") from None
    return spec


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="8gaussians", type=_dataset, metavar="DATA",
                        help=f"source data set at t = 0 (%(default)s): {DATA_SYNTAX}")
    parser.add_argument("--target", default="moons", type=_dataset, metavar="DATA",
                        help="target data set at t = 1 (%(default)s), the same choices")
    parser.add_argument("--steps", type=int, default=5000, help="training steps per model (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, initialisation and training (%(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train (%(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the figures and metrics (%(default)s)")
    parser.add_argument("--eval-points", type=int, default=2000,
                        help="source and target points for the metrics and figures (%(default)s; exact W2 costs O(n³))")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _check_counts(args: argparse.Namespace, *names: str) -> None:
    """Each named option must be a count >= 1 (>= 2 for the evaluation points, which W2 compares as sets)."""
    for name in names:
        least = 2 if name == "eval_points" else 1
        if getattr(args, name) < least:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= {least}, got {getattr(args, name)}")


def train_command(args: argparse.Namespace) -> dict:
    """Train one flow-matching model and write ``trajectories.png`` and ``metrics.json``."""
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    _check_counts(args, "steps", "eval_points")
    _output_folder(args.out)
    device = _device(args.device)
    torch.manual_seed(args.seed)
    source, target = data.from_spec(args.source), data.from_spec(args.target)
    model = VelocityMLP().to(device)
    objective = FlowMatching(couplings.PairSampler(source, target, COUPLINGS[args.coupling]()))
    history = fit(model, objective, args.steps, seed=args.seed, progress=not args.no_progress,
                  description=f"{args.coupling} flow matching")
    generator = torch.Generator().manual_seed(args.seed + 1)  # the device rule: a CPU generator, samples moved
    x0, x1 = source.sample(args.eval_points, generator, device), target.sample(args.eval_points, generator, device)
    result = {
        "source": args.source, "target": args.target, "coupling": args.coupling, "steps": args.steps,
        "train_seconds": round(history.seconds, 2),
        "straightness": metrics.straightness(model, x0),
        "w2_by_nfe": metrics.w2_by_nfe(model, x0, x1),
    }
    path = solvers.integrate(model, x0, steps=100, return_path=True).path
    ax = plot.trajectories(path, source=x0, target=x1, title=(
        f"{_label(args.source)} → {_label(args.target)} ({args.coupling})\nstraightness {result['straightness']:.3g}, "
        f"W2 @1 NFE {result['w2_by_nfe'][1]:.2f}"))
    ax.figure.savefig(args.out / "trajectories.png", dpi=120, bbox_inches="tight")
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def reflow_command(args: argparse.Namespace) -> list[dict]:
    """Train 1-RF and K reflow rounds; write ``trajectories.png``, ``reflow.gif``, ``reflow.html``, ``explorer.html``
    (the interactive explorer: drag time, switch rounds) and ``metrics.json``."""
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    _check_counts(args, "steps", "pairs", "eval_points")
    if args.rounds < 0:
        raise SystemExit(f"error: --rounds (reflow rounds after 1-RF) must be >= 0, got {args.rounds}")
    if not args.lr > 0:
        raise SystemExit(f"error: --lr must be > 0, got {args.lr}")
    _output_folder(args.out)
    device = _device(args.device)
    torch.manual_seed(args.seed)
    source, target = data.from_spec(args.source), data.from_spec(args.target)
    rounds = rectify.rectified_flow(source, target, args.rounds + 1, args.steps, args.pairs, VelocityMLP().to(device),
                                    seed=args.seed, progress=not args.no_progress, lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed + 1)  # the device rule: a CPU generator, samples moved
    x0, x1 = source.sample(args.eval_points, generator, device), target.sample(args.eval_points, generator, device)
    table = [{"round": r.name, "train seconds": round(r.history.seconds, 2), **metrics.flow_summary(r.model, x0, x1)}
             for r in rounds]
    paths = {r.name: solvers.integrate(r.model, x0[:500], steps=60, return_path=True).path for r in rounds}

    titles = [f"{row['round']}: straightness {row['straightness']:.3g}\nW2 @1 NFE {row['W2 @1']:.2f}" for row in table]
    fig, _ = plot.rounds(paths, x0, x1, titles,
                         suptitle=f"{_label(args.source)} → {_label(args.target)}: paths straighten round by round")
    fig.savefig(args.out / "trajectories.png", dpi=110, bbox_inches="tight")
    animation = plot.animate(paths, source=x0, target=x1, titles=titles)
    plot.save_gif(animation, args.out / "reflow.gif")
    (args.out / "reflow.html").write_text(plot.to_html(animation))
    numbers = {row["round"]: {"straightness": row["straightness"], "W2 @1 step": row["W2 @1"]} for row in table}
    plot.explorer(paths, x0, x1, numbers, title=f"{_label(args.source)} → {_label(args.target)}").save(args.out / "explorer.html")
    settings = {key: str(value) for key, value in vars(args).items() if key != "run"}
    (args.out / "metrics.json").write_text(json.dumps({"settings": settings, "rounds": table}, indent=2))
    print(plot.markdown_table(table))
    print(f"wrote trajectories.png, reflow.gif, reflow.html, explorer.html and metrics.json to {args.out}")
    return table


def build_parser() -> argparse.ArgumentParser:
    """The ``toyflow`` command line: ``train`` and ``reflow`` sub-commands, each with ``--help``."""
    parser = argparse.ArgumentParser(prog="toyflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train one flow-matching model and draw its trajectories",
                                description=train_command.__doc__)
    _common(train)
    train.add_argument("--coupling", default="independent", choices=sorted(COUPLINGS), help="(%(default)s)")
    train.set_defaults(run=train_command)
    reflow = commands.add_parser("reflow", help="rectified flow: 1-RF, then reflow rounds that straighten the paths",
                                 description=reflow_command.__doc__)
    _common(reflow)
    reflow.add_argument("--rounds", type=int, default=2, help="reflow rounds after 1-RF (%(default)s: 1-RF, 2-RF, 3-RF)")
    reflow.add_argument("--pairs", type=int, default=20000, help="source points rectified per reflow round (%(default)s)")
    reflow.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (%(default)s)")
    reflow.set_defaults(run=reflow_command)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``)."""
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
