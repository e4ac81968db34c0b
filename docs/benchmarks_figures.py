"""The figures of the benchmarks page (``docs/benchmarks_page.py``), read from the tables of a result JSON (nothing is
run or timed here). Three kinds of table become figures, each point the median over seeds:

- quality against NFE: columns ``"W2 @ 1"``, ``"fine W2 @ 4"``, … (any quality ``Q @ k``); one line per method and
  library, each metric's floors drawn;
- time to quality: a table whose rows have ``"budget s"`` and ``"train s"`` (the measured training seconds) and a
  quality column (``W2``, ``fine W2``, ``NLL gap``, each at its fewest and its most NFE): quality against the median
  training seconds of each budget, one line per method and library, one panel per quality column, its floors drawn;
  a line trained for one budget only is a point, and a table without two budgets on some line draws no time figure;
- a curve over an axis column (``t``, ``NFE`` or ``budget s``): one line per quality column (timings left out); a
  column named ``exact …`` is the dashed reference, and the title gives each line's worst relative gap to it.

A row's line is named by its text columns and by the integer columns whose values repeat in the table (settings such as
``layers``); a count measured per run, such as the steps a time budget allowed, differs between runs and names nothing.
"""

from __future__ import annotations

import ast
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

COMMON = Path(__file__).resolve().parent.parent / "benchmarks" / "common.py"
AT_NFE = re.compile(r"^(?P<quality>.+?) ?@ ?(?P<nfe>\d+)$")  # "W2 @ 4", "fine W2 @ 4", "W2 @4"
AXES = ("t", "NFE", "budget s")  # a table with one of these columns is drawn against it
NOT_A_LINE = ("seed", "seeds", "runs")  # columns that neither name a line nor are drawn
METRICS = ("W2", "fine W2", "NLL gap")  # the qualities drawn against training time
FLOOR_DASHES = ((1, 1.5), (5, 2), (8, 2, 1, 2))  # dotted, dashed, dash-dot: one per floor of a figure

Points = dict[str, list[tuple[float, float]]]  # line label -> (x, y) points


@dataclass
class Panel:
    """One axes of a figure: its title (with measured numbers), its lines, its y label and the floors drawn on it."""

    title: str
    lines: Points
    ylabel: str
    floors: dict[str, float] = field(default_factory=dict)


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


def sizes() -> dict[str, int]:
    """How many points each metric uses, read from ``benchmarks/common.py`` (``EVAL_SIZE``, ``FINE_SIZE``)."""
    found = {}
    for node in ast.parse(COMMON.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("EVAL_SIZE", "FINE_SIZE"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def floor_names() -> dict[str, str]:
    """What each floor key of a result means, in the words the figures' legends and the page use."""
    size = sizes()
    return {"floor": f"W2 floor ({size['EVAL_SIZE']:,} points)",
            "floor_w2": f"W2 floor: two stratified references ({size['EVAL_SIZE']:,} points)",
            "iid_floor_w2": "W2 floor: i.i.d. target draws (a perfect sampler)",
            "fine_floor": f"fine W2 floor ({size['FINE_SIZE']:,} points)"}


def floors(result: dict) -> dict[str, float]:
    """The floors a result records (``floor_w2``, ``iid_floor_w2``, ``fine_floor``, ``floor``), one number each (a
    list of floors, one per seed, gives its median)."""
    found = {}
    for key, value in result.items():
        if "floor" in key and isinstance(value, (int, float)):
            found[key] = float(value)
        elif "floor" in key and isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            found[key] = statistics.median(value)
    return found


def floors_for(quality: str, result: dict) -> dict[str, float]:
    """The floors to draw under a quality (``"W2 @ 4"`` is ``W2``), by name: the W2 floors under W2, the fine floor
    under fine W2, the exact density's gap 0 under an NLL gap, none under anything else."""
    metric = _metric(quality)
    names = floor_names()
    if metric == "NLL gap":
        return {"exact density": 0.0}
    if metric not in ("W2", "fine W2"):
        return {}
    fine = metric == "fine W2"
    return {names.get(key, key): value for key, value in floors(result).items() if ("fine" in key) == fine}


def _quality(column: str) -> str:
    """A column's quality without its NFE: ``"fine W2 @ 4"`` -> ``"fine W2"``."""
    match = AT_NFE.match(column)
    return (match["quality"] if match else column).strip()


def _metric(column: str) -> str:
    """The metric of ``METRICS`` a column measures (``"W2 (2-D coords) @ 4"`` -> ``"W2"``), else its quality."""
    quality = _quality(column)
    return next((m for m in sorted(METRICS, key=len, reverse=True) if quality == m or quality.startswith(m + " ")),
                quality)


def _is_timing(column: str) -> bool:
    return column.endswith(" s") or re.search(r"\bms\b|seconds", column) is not None


def line_columns(rows: list[dict]) -> list[str]:
    """The columns that name a row's line: text and yes/no columns, ``budget s``, and integer columns whose values
    repeat within the lines (a setting, the same for every seed; a measured count differs from run to run)."""
    columns = [column for column in dict.fromkeys(c for row in rows for c in row) if column not in NOT_A_LINE]
    values = {column: [row[column] for row in rows if column in row] for column in columns}
    text = [c for c in columns if c == "budget s" or all(isinstance(v, (str, bool)) for v in values[c])]
    whole = [c for c in columns
             if c not in text and all(isinstance(v, int) and not isinstance(v, bool) for v in values[c])]
    repeated = [c for c in whole if len({(tuple(row.get(t) for t in text), row.get(c)) for row in rows}) < len(rows)]
    return [c for c in columns if c in text or c in repeated]


def _label(row: dict, columns: list[str]) -> str:
    """A row's line: its text values, and its numbers as ``name value``."""
    parts = [f"{c} {row[c]:g}" if isinstance(row[c], (int, float)) and not isinstance(row[c], bool) else str(row[c])
             for c in columns if row.get(c, "") != ""]
    return " · ".join(parts)


def _medians(points: dict[tuple[str, float], list[float]]) -> Points:
    """Points grouped by (line, x) -> one point per x, the median of the values (over seeds)."""
    lines: Points = defaultdict(list)
    for (line, x), values in points.items():
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            lines[line].append((x, statistics.median(finite)))
    return {line: sorted(points) for line, points in lines.items()}


def longest_budget(rows: list[dict]) -> list[dict]:
    """The rows trained for the largest budget of their line (every row when none has a ``budget s``)."""
    named = [column for column in line_columns(rows) if column != "budget s"]
    longest = defaultdict(float)
    for row in rows:
        longest[_label(row, named)] = max(longest[_label(row, named)], row.get("budget s", 0))
    return [row for row in rows if row.get("budget s", 0) == longest[_label(row, named)]]


def nfe_curves(rows: list[dict]) -> dict[str, Points]:
    """Quality against NFE from the ``"Q @ k"`` columns: ``{quality: {line: [(nfe, median over seeds)]}}``, for every
    quality measured at two NFEs or more; each line at its largest budget (the time figure shows the others)."""
    at_nfe = {column: (match["quality"], int(match["nfe"]))
              for column in dict.fromkeys(c for row in rows for c in row) if (match := AT_NFE.match(column))}
    named = [column for column in line_columns(rows) if column != "budget s"]
    grouped: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in longest_budget(rows):
        for column, (quality, nfe) in at_nfe.items():
            if isinstance(row.get(column), (int, float)):
                grouped[quality][_label(row, named), nfe].append(float(row[column]))
    curves = {quality: _medians(points) for quality, points in grouped.items()}
    return {quality: lines for quality, lines in curves.items() if len({x for p in lines.values() for x, _ in p}) >= 2}


def time_columns(rows: list[dict]) -> list[str]:
    """The quality columns drawn against training time: every quality of one of ``METRICS`` (``W2``,
    ``fine W2 (2-D coords)``, …) at its fewest and at its most NFE (the NFE figure shows the others)."""
    measured = defaultdict(list)  # quality -> [(NFE, column)]
    for column in dict.fromkeys(c for row in rows for c in row):
        if _metric(column) in METRICS:
            measured[_quality(column)].append((int(m["nfe"]) if (m := AT_NFE.match(column)) else 0, column))
    chosen = []
    for metric in METRICS:
        for quality, columns in measured.items():
            if _metric(quality) == metric:
                chosen += dict.fromkeys([min(columns)[1], max(columns)[1]])
    return chosen


def time_curves(rows: list[dict]) -> dict[str, Points]:
    """Quality against training time: ``{quality column: {line: [(median train s, median quality)]}}``, one point
    per budget (medians over seeds); empty unless some line was trained for two budgets or more."""
    if not all("train s" in row and "budget s" in row for row in rows):
        return {}
    named = [column for column in line_columns(rows) if column != "budget s"]
    runs = defaultdict(list)
    for row in rows:
        runs[_label(row, named), row["budget s"]].append(row)
    curves = {}
    for column in time_columns(rows):
        lines: Points = defaultdict(list)
        for (line, _), group in runs.items():
            seconds = [s for s in _finite(group, "train s") if s > 0]  # an untrained row has no place on a log axis
            values = _finite(group, column)
            if seconds and values:
                lines[line].append((statistics.median(seconds), statistics.median(values)))
        curves[column] = {line: sorted(points) for line, points in lines.items()}
    return curves if any(len(p) >= 2 for lines in curves.values() for p in lines.values()) else {}


def _finite(rows: list[dict], column: str) -> list[float]:
    return [row[column] for row in rows if isinstance(row.get(column), (int, float)) and math.isfinite(row[column])]


def axis_curves(rows: list[dict], axis: str) -> dict[str, Points]:
    """Every quality column against ``axis``: ``{panel: {quality column: [(x, median)]}}``, a panel per line label."""
    qualities = [column for column, value in rows[0].items()
                 if isinstance(value, float) and column != axis and not _is_timing(column) and not AT_NFE.match(column)]
    named = [column for column in line_columns(rows) if column != axis]
    grouped: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for column in qualities:
            if isinstance(row.get(column), (int, float)) and isinstance(row.get(axis), (int, float)):
                grouped[_label(row, named)][column, float(row[axis])].append(float(row[column]))
    return {panel: _medians(points) for panel, points in grouped.items()}


def _lowest_at(lines: Points, last: bool = True) -> str:
    """``"lowest at x: line value"``: the line with the lowest value at the largest (or smallest) x."""
    xs = [x for points in lines.values() for x, _ in points]
    at = max(xs) if last else min(xs)
    values = {line: y for line, points in lines.items() for x, y in points if x == at}
    best = min(values, key=values.get)
    return f"lowest at {at:g}: {best} {values[best]:.3g}"


def _best_reached(lines: Points) -> str:
    """``"best median value (line, after x s)"``: the lowest point of all lines."""
    value, seconds, line = min((y, x, line) for line, points in lines.items() for x, y in points)
    return f"best median {value:.3g} ({line}, after {seconds:.3g} s)"


def _worst_gaps(lines: Points) -> str | None:
    """Each line's worst relative gap ``|y / exact − 1|`` to the ``exact …`` line, or None without one."""
    exact = next((dict(points) for line, points in lines.items() if line.startswith("exact")), None)
    if exact is None:
        return None
    gaps = {line: max(abs(y / exact[x] - 1) for x, y in points if x in exact and exact[x])
            for line, points in lines.items() if not line.startswith("exact")}
    return "worst |y/exact − 1|: " + ", ".join(f"{line.split(' (')[0]} {gap:.3f}" for line, gap in gaps.items())


def draw(path: Path, title: str, panels: list[Panel], xlabel: str, log_x: bool = False, share_y: bool = True) -> None:
    """A figure of line plots, one axes per panel, its floors as grey lines, the ``exact …`` line dashed, one legend
    below all; with ``log_x`` x on a log scale when it spans a factor of 8 or more (ticks at the xs when whole); y on a
    log scale when its values and floors are positive and span a factor of 8 or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    width = 5.2 * columns if columns > 1 else 6.4  # one panel: room for the legend's long names
    figure, axes = plt.subplots(rows, columns, figsize=(width, 3.0 * rows + 1.2), squeeze=False, sharey=share_y,
                                layout="constrained")
    colours, dashes = {}, {}
    for ax, panel in zip(axes.flat, panels):
        for line, points in panel.lines.items():
            xs, ys = zip(*points)
            if line.startswith("exact"):
                style = {"color": "black", "linestyle": "--"}
            else:
                style = {"color": colours.setdefault(line, f"C{len(colours) % 10}"), "marker": "o", "markersize": 3}
            ax.plot(xs, ys, label=line, **style)
        for name, value in panel.floors.items():
            pattern = dashes.setdefault(name, FLOOR_DASHES[len(dashes) % len(FLOOR_DASHES)])
            ax.axhline(value, color="dimgrey", linewidth=1.2, dashes=pattern, label=f"{name} = {value:.3g}")
        xs = sorted({x for points in panel.lines.values() for x, _ in points})
        if log_x and xs[0] > 0 and xs[-1] / xs[0] >= 8:
            ax.set_xscale("log")
            if all(x == int(x) for x in xs):
                ax.set_xticks(xs, [f"{x:g}" for x in xs])
            else:
                ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
                ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.minorticks_off()
        elif log_x and all(x == int(x) for x in xs):  # a few whole numbers (NFE 1 and 2): ticks only there
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ys = [y for points in panel.lines.values() for _, y in points if math.isfinite(y)] + list(panel.floors.values())
        if ys and min(ys) > 0 and max(ys) / min(ys) >= 8:  # the good methods sit near the floor: log y shows them apart
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(panel.title, fontsize=8, wrap=True)
        ax.set_xlabel(xlabel, fontsize=8)
        if not share_y or ax in axes[:, 0]:
            ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=columns, fontsize=7)
    figure.suptitle(title, fontsize=10, wrap=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def nfe_panel(lines: Points, quality: str, result: dict) -> Panel:
    """The quality-against-NFE panel: its title names the lowest line at the fewest and at the most NFE."""
    return Panel(f"{_lowest_at(lines, last=False)}\n{_lowest_at(lines)}", lines, quality, floors_for(quality, result))


def time_panels(rows: list[dict], result: dict) -> list[Panel]:
    """The time-to-quality panels of a table, one per quality column, each with its floors (none without a curve)."""
    return [Panel(f"{column}: {_best_reached(lines)}", lines, column, floors_for(column, result))
            for column, lines in time_curves(rows).items() if lines]


def figures(name: str, result: dict, out: Path) -> list[tuple[str, str]]:
    """Draw every curve in a result into ``out``: ``[(file name, caption)]``."""
    drawn = []
    for table, rows in tables(result):
        if "summary" in table:  # the summaries repeat the rows' medians
            continue
        stem = _slug(f"{name}_{table}")
        budgets = sorted({row["budget s"] for row in longest_budget(rows) if "budget s" in row})
        at = f", trained for {'/'.join(f'{b:g}' for b in budgets)} s" if budgets else ""
        for quality, lines in nfe_curves(rows).items():
            file = f"{stem}_{_slug(quality)}_nfe.png"
            title = f"{name}: {quality} against NFE ({table}{at}), median over seeds"
            draw(out / file, title, [nfe_panel(lines, quality, result)], "NFE", log_x=True)
            drawn.append((file, title))
        if panels := time_panels(rows, result):
            file = f"{stem}_time.png"
            title = f"{name}: quality against training time ({table}), median over seeds per budget"
            draw(out / file, title, panels, "training seconds (median per budget)", log_x=True, share_y=False)
            drawn.append((file, title))
        axis = next((axis for axis in AXES if axis in rows[0]), None)
        if axis is None or (axis == "budget s" and panels):  # the time figure already draws the budgets
            continue
        curves = axis_curves(rows, axis)
        qualities = {line for lines in curves.values() for line in lines}
        ylabel = next(iter(qualities)) if len(qualities) == 1 else "value"
        shown = floors_for(ylabel, result)
        titled = [Panel(f"{panel}\n{_worst_gaps(lines) or _lowest_at(lines)}", lines, ylabel, shown)
                  for panel, lines in curves.items() if lines]
        if any(len(points) >= 2 for panel in titled for points in panel.lines.values()):  # a point is not a curve
            file = f"{stem}_{_slug(axis)}.png"
            title = f"{name}: {table} against {axis}"
            draw(out / file, title, titled, axis, log_x=axis != "t")
            drawn.append((file, title))
    return drawn


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_")
