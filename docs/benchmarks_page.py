"""The benchmarks page of the course website, built from the JSON the benchmark scripts wrote to
``benchmarks/results/`` (nothing is run or timed here).

One section per script in ``benchmarks/``, those with results first: what it compares (the first paragraph of its
docstring), the command that reproduces the results (its recorded settings as flags), the W2 floors it measured, a
figure per table that has a curve in it, and every table (the summaries open, long per-seed tables folded). A script
without results gets the command that makes them. Two kinds of table become figures:

- quality against NFE: columns ``"W2 @ 1"``, ``"W2 @ 2"``, … (any quality ``Q @ k``); one line per method and library
  (the row's text and integer columns), the median over seeds, the floors as dotted lines;
- a curve over an axis column (``t``, ``NFE`` or ``budget s``): one line per quality column (timings left out); a
  column named ``exact …`` is the dashed reference, and the title gives each line's worst relative gap to it.

    python docs/course.py site   # writes benchmarks.html and benchmarks/*.png next to the course pages
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
AT_NFE = re.compile(r"^(?P<quality>.+?) ?@ ?(?P<nfe>\d+)$")  # "W2 @ 4", "W2 @4"
AXES = ("t", "NFE", "budget s")  # a table with one of these columns is drawn against it
NOT_A_LINE = ("seed", "seeds", "runs")  # columns that neither name a line nor are drawn

Points = dict[str, list[tuple[float, float]]]  # line label -> (x, y) points


def scripts() -> list[Path]:
    """The benchmark scripts (``benchmarks/common.py`` is their shared code, not a benchmark)."""
    return sorted(path for path in BENCHMARKS.glob("*.py") if path.stem != "common")


def script_of(result: Path) -> str:
    """The script that wrote a result file: ``fast_flowmap_latent.json`` -> ``fast``."""
    stems = sorted((path.stem for path in scripts()), key=len, reverse=True)
    return next((stem for stem in stems if result.stem == stem or result.stem.startswith(stem + "_")), result.stem)


def command(script: str, settings: dict) -> str:
    """The command line that reproduces a result: the script with its recorded settings as flags (``vars(args)``:
    ``swap_steps`` -> ``--swap-steps``; a list gives its values, ``True`` the bare flag, ``False`` and ``None`` nothing)."""
    parts = [f"python benchmarks/{script}.py"]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
        else:
            values = value if isinstance(value, list) else [value]
            parts.append(" ".join([flag, *(_shell(v) for v in values)]))
    return " ".join(parts)


def _shell(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if re.fullmatch(r"[\w.,:+/=-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def tables(result: dict) -> list[tuple[str, list[dict]]]:
    """Every table in a result: each value that is a list of dicts, and each such list one level down
    (``sampling.json``'s ``"summary": {"boss": [...], ...}`` gives ``"summary · boss"``)."""
    found = []
    for key, value in result.items():
        if _is_table(value):
            found.append((key, value))
        elif isinstance(value, dict):
            found += [(f"{key} · {inner}", rows) for inner, rows in value.items() if _is_table(rows)]
    return found


def _is_table(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


def floors(result: dict) -> dict[str, float]:
    """The W2 floors a result records (``floor_w2``, ``iid_floor_w2``, ``floor``), one number each (a list of floors,
    one per seed, gives its median)."""
    found = {}
    for key, value in result.items():
        if "floor" in key and isinstance(value, (int, float)):
            found[key] = float(value)
        elif "floor" in key and isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            found[key] = statistics.median(value)
    return found


def _is_timing(column: str) -> bool:
    return column.endswith(" s") or re.search(r"\bms\b|seconds", column) is not None


def _label(row: dict, leave_out: set[str]) -> str:
    """A row's line: its text columns' values and its integer columns as ``name value``."""
    parts = []
    for key, value in row.items():
        if key in leave_out or key in NOT_A_LINE or isinstance(value, float):
            continue
        parts.append(f"{key} {value}" if isinstance(value, (int, bool)) else str(value))
    return " · ".join(parts)


def _medians(points: dict[tuple[str, float], list[float]]) -> Points:
    """Points grouped by (line, x) -> one point per x, the median of the values (over seeds)."""
    lines: Points = defaultdict(list)
    for (line, x), values in points.items():
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            lines[line].append((x, statistics.median(finite)))
    return {line: sorted(points) for line, points in lines.items()}


def nfe_curves(rows: list[dict]) -> dict[str, Points]:
    """Quality against NFE from the ``"Q @ k"`` columns: ``{quality: {line: [(nfe, median over seeds)]}}``, for every
    quality measured at two NFEs or more."""
    columns = {column: AT_NFE.match(column) for row in rows for column in row}
    at_nfe = {column: (match["quality"], int(match["nfe"])) for column, match in columns.items() if match}
    grouped: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        line = _label(row, set(at_nfe))
        for column, (quality, nfe) in at_nfe.items():
            if isinstance(row.get(column), (int, float)):
                grouped[quality][line, nfe].append(float(row[column]))
    curves = {quality: _medians(points) for quality, points in grouped.items()}
    return {quality: lines for quality, lines in curves.items() if len({x for p in lines.values() for x, _ in p}) >= 2}


def axis_curves(rows: list[dict], axis: str) -> dict[str, Points]:
    """Every quality column against ``axis``: ``{panel: {quality column: [(x, median)]}}``, a panel per line label."""
    qualities = [column for column, value in rows[0].items()
                 if isinstance(value, float) and column != axis and not _is_timing(column) and not AT_NFE.match(column)]
    grouped: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        panel = _label(row, {axis})
        for column in qualities:
            if isinstance(row.get(column), (int, float)) and isinstance(row.get(axis), (int, float)):
                grouped[panel][column, float(row[axis])].append(float(row[column]))
    return {panel: _medians(points) for panel, points in grouped.items()}


def _lowest_at(lines: Points, last: bool = True) -> str:
    """``"lowest at x: line value"``: the line with the lowest value at the largest (or smallest) x."""
    xs = [x for points in lines.values() for x, _ in points]
    at = max(xs) if last else min(xs)
    values = {line: y for line, points in lines.items() for x, y in points if x == at}
    best = min(values, key=values.get)
    return f"lowest at {at:g}: {best} {values[best]:.3g}"


def _worst_gaps(lines: Points) -> str | None:
    """Each line's worst relative gap ``|y / exact − 1|`` to the ``exact …`` line, or None without one."""
    exact = next((dict(points) for line, points in lines.items() if line.startswith("exact")), None)
    if exact is None:
        return None
    gaps = {line: max(abs(y / exact[x] - 1) for x, y in points if x in exact and exact[x])
            for line, points in lines.items() if not line.startswith("exact")}
    return "worst |y/exact − 1|: " + ", ".join(f"{line.split(' (')[0]} {gap:.3f}" for line, gap in gaps.items())


def draw(path: Path, title: str, panels: dict[str, Points], xlabel: str, ylabel: str,
         floor_lines: dict[str, float] | None = None, log_x: bool = False) -> None:
    """A figure of line plots, one axes per panel (its title carries its measured numbers), the floors dotted, the
    ``exact …`` line dashed, one legend below all; with ``log_x`` x on a log scale when it spans a factor of 8 or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows + 1.0), squeeze=False,
                                sharey=True, layout="constrained")
    colours = {}
    for ax, (name, lines) in zip(axes.flat, panels.items()):
        for line, points in lines.items():
            xs, ys = zip(*points)
            if line.startswith("exact"):
                style = {"color": "black", "linestyle": "--"}
            else:
                style = {"color": colours.setdefault(line, f"C{len(colours) % 10}"), "marker": "o", "markersize": 3}
            ax.plot(xs, ys, label=line, **style)
        for i, (name_floor, value) in enumerate((floor_lines or {}).items()):
            ax.axhline(value, color="grey", linestyle=":", dashes=(1, 1 + 2 * i), label=f"{name_floor} = {value:.3f}")
        xs = [x for points in lines.values() for x, _ in points]
        if log_x and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
            ax.minorticks_off()
        ax.set_title(name, fontsize=8, wrap=True)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 3), fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def figures(name: str, result: dict, out: Path) -> list[tuple[str, str]]:
    """Draw every curve in a result into ``out``: ``[(file name, caption)]``."""
    drawn = []
    for table, rows in tables(result):
        if "summary" in table:  # the summaries repeat the rows' medians
            continue
        stem = _slug(f"{name}_{table}")
        for quality, lines in nfe_curves(rows).items():
            file = f"{stem}_{_slug(quality)}_nfe.png"
            shown = floors(result) if quality.strip() == "W2" else {}
            title = f"{name}: {quality} against NFE ({table}), median over seeds"
            panel = f"{_lowest_at(lines, last=False)}\n{_lowest_at(lines)}"
            draw(out / file, title, {panel: lines}, "NFE", quality, shown, log_x=True)
            drawn.append((file, title))
        axis = next((axis for axis in AXES if axis in rows[0]), None)
        if axis is None:
            continue
        panels = axis_curves(rows, axis)
        titled = {f"{panel}\n{_worst_gaps(lines) or _lowest_at(lines)}": lines for panel, lines in panels.items() if lines}
        if titled:
            file = f"{stem}_{_slug(axis)}.png"
            title = f"{name}: {table} against {axis}"
            qualities = {line for lines in panels.values() for line in lines}
            shown = floors(result) if all(q.startswith("W2") for q in qualities) else {}
            draw(out / file, title, titled, axis, next(iter(qualities)) if len(qualities) == 1 else "value",
                 shown, log_x=axis != "t")
            drawn.append((file, title))
    return drawn


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return html.escape(str(value))


def html_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(row.get(column, ''))}</td>" for column in columns) + "</tr>"
                     for row in rows)
    return f'<table class="bench"><tr>{head}</tr>\n{body}\n</table>'


def _about(script: Path) -> str:
    """The first paragraph of a script's docstring as HTML (its ````code```` spans as ``<code>``)."""
    import ast

    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(doc.split("\n\n")[0].replace("\n", " ")))


def _section(script: Path, results: list[Path], out: Path) -> str:
    name = script.stem
    parts = [f'<section id="{name}"><h2>{name}</h2>', f"<p>{_about(script)}</p>"]
    if not results:
        parts.append(f"<p><em>No results in <code>benchmarks/results/</code> yet.</em> Make them with "
                     f"<code>python benchmarks/{name}.py</code> (or <code>make bench</code>), then rebuild the site.</p>")
    for path in results:
        result = json.loads(path.read_text())
        measured = [f"{result['threads']} torch thread(s)" if "threads" in result else "",
                    f"{result['total wall s']:.0f} s in all" if "total wall s" in result else ""]
        how = html.escape(command(name, result.get("settings", {})))
        parts.append(f"<h3>{html.escape(path.name)}</h3><p>Reproduce: <code>{how}</code>"
                     f"{' (' + ', '.join(m for m in measured if m) + ')' if any(measured) else ''}</p>")
        if floors(result):
            parts.append("<p>W2 floors: " + ", ".join(f"{key} = {value:.3f}" for key, value in floors(result).items()) + "</p>")
        for file, caption in figures(path.stem, result, out):
            parts.append(f'<figure><img class="figure" src="benchmarks/{file}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        for table, rows in tables(result):
            rendered = f"<h4>{html.escape(table)}</h4>{html_table(rows)}"
            parts.append(rendered if "summary" in table or len(rows) <= 12 else
                         f"<details><summary>{html.escape(table)}: {len(rows)} rows</summary>{rendered}</details>")
    return "\n".join(parts) + "</section>"


def build_benchmarks(out: Path, nav: str, style: str) -> Path:
    """Write ``out/benchmarks.html`` and its figures (``out/benchmarks/*.png``) from ``benchmarks/results/*.json``."""
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    found = defaultdict(list)
    for path in sorted(RESULTS.glob("*.json")):
        found[script_of(path)].append(path)
    ordered = sorted(scripts(), key=lambda script: not found.get(script.stem))  # those with results first
    sections = "\n".join(_section(script, found.get(script.stem, []), out / "benchmarks") for script in ordered)
    contents = " · ".join(f'<a href="#{s.stem}">{s.stem}</a>' + ("" if found.get(s.stem) else " (not run)") for s in ordered)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Benchmarks · toyflow</title>
<style>{style}
table.bench {{ font-size: .85rem; margin: .5rem 0 1rem; }} figure {{ margin: 1rem 0; }}
figcaption {{ font-size: .85rem; color: #555; }} details {{ margin: .5rem 0; }}</style></head>
<body>
{nav}
<h1>Benchmarks</h1>
<p>Speed and quality of toyflow's methods, mostly on torchcfm's task (8 Gaussians → moons), with torchcfm and zuko run
in the same process where they compare. Every number below was read from <code>benchmarks/results/*.json</code>, written
by the scripts in <code>benchmarks/</code> on the machine that built this page; each section gives the command that
reproduces it. Figures show medians over seeds; W2 floors are what a perfect sampler scores against the same
reference set.</p>
<p>{contents}</p>
{sections}
</body></html>
"""
    path = out / "benchmarks.html"
    path.write_text(page, encoding="utf-8")
    return path
