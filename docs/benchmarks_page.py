"""The benchmarks page of the course website, built from the JSON the benchmark scripts wrote to
``benchmarks/results/`` (nothing is run or timed here).

The page opens with what the two metrics measure (W2 and fine W2, their point counts read from
``benchmarks/common.py``, the ratio of their floors as measured) and how the timings were taken. Then one section per
script in ``benchmarks/``, those with results first: what it compares (the first paragraph of its docstring), the
command that reproduces the results (its recorded settings as flags), the machine and threads it ran on, the floors it
measured, the figures (quality against NFE, quality against training time, curves over an axis column; drawn by
``docs/benchmarks_figures.py``) and every table (the summaries open, long per-seed tables folded). A script without
results gets the command that makes them.

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

from benchmarks_figures import figures, floor_names, floors, sizes, tables

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"


def scripts() -> list[Path]:
    """The benchmark scripts (``benchmarks/common.py`` is their shared code, not a benchmark)."""
    return sorted(path for path in BENCHMARKS.glob("*.py") if path.stem != "common")


def script_of(result: Path) -> str:
    """The script that wrote a result file: ``fast_flowmap_latent.json`` -> ``fast``."""
    stems = sorted((path.stem for path in scripts()), key=len, reverse=True)
    return next((stem for stem in stems if result.stem == stem or result.stem.startswith(stem + "_")), result.stem)


def command(script: str, settings: dict) -> str:
    """The command line that reproduces a result: the script with its recorded settings as flags (``vars(args)``:
    ``swap_steps`` -> ``--swap-steps``; a list gives its values, ``True`` the bare flag, ``False`` and ``None``
    nothing)."""
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


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return html.escape(str(value))


def html_table(rows: list[dict]) -> str:
    """The rows as an HTML table, every column any row has; a wide table scrolls inside its box, not the page."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(row.get(column, ''))}</td>" for column in columns) + "</tr>"
                     for row in rows)
    return f'<div style="overflow-x: auto"><table class="bench"><tr>{head}</tr>\n{body}\n</table></div>'


def _about(script: Path) -> str:
    """The first paragraph of a script's docstring as HTML (its ````code```` spans as ``<code>``)."""
    import ast

    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(doc.split("\n\n")[0].replace("\n", " ")))


def _section(script: Path, results: list[Path], out: Path) -> str:
    name = script.stem
    parts = [f'<section id="{name}"><h2>{name}</h2>', f"<p>{_about(script)}</p>"]
    if not results:
        parts.append(f"<p><em>No results in <code>benchmarks/results/</code> yet.</em> Make them with <code>python "
                     f"benchmarks/{name}.py</code> (or <code>make bench</code>), then rebuild the site.</p>")
    for path in results:
        result = json.loads(path.read_text())
        measured = [f"on {result['machine']}" if "machine" in result else "",
                    f"{result['threads']} torch thread(s)" if "threads" in result else "",
                    f"{result['total wall s']:.0f} s in all" if "total wall s" in result else ""]
        how = html.escape(command(name, result.get("settings", {})))
        parts.append(f"<h3>{html.escape(path.name)}</h3><p>Reproduce: <code>{how}</code>"
                     f"{' (' + ', '.join(m for m in measured if m) + ')' if any(measured) else ''}</p>")
        if floors(result):
            names = floor_names()
            parts.append("<p>Floors measured: " + "; ".join(f"{html.escape(names.get(key, key))} = {value:.3g}"
                                                             for key, value in floors(result).items()) + "</p>")
        for file, caption in figures(path.stem, result, out):
            parts.append(f'<figure><img class="figure" src="benchmarks/{file}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        for table, rows in tables(result):
            rendered = f"<h4>{html.escape(table)}</h4>{html_table(rows)}"
            parts.append(rendered if "summary" in table or len(rows) <= 12 else
                         f"<details><summary>{html.escape(table)}: {len(rows)} rows</summary>{rendered}</details>")
    return "\n".join(parts) + "</section>"


def _metrics(results: list[dict]) -> str:
    """What the two metrics and the timings are: the point counts from ``benchmarks/common.py``, the floors' ratio
    from the results that measured both floors."""
    size = sizes()
    ratios = [r["iid_floor_w2"] / r["fine_floor"] for r in results if r.get("fine_floor") and "iid_floor_w2" in r]
    lower = (f"{statistics.median(ratios):.1f} times lower than W2's i.i.d. floor (the median over the results below)"
             if ratios else "lower than W2's")
    return f"""<p>Two metrics. <strong>W2</strong>: the exact 2-Wasserstein distance of {size['EVAL_SIZE']:,} samples
to a stratified reference of the target (exactly half the points on each moon, as torchcfm measures, so the numbers
compare with theirs). <strong>fine W2</strong>: the sliced W2 (in W2's units) of {size['FINE_SIZE']:,} samples to as
many i.i.d. target draws; its floor is {lower}, so it still sees progress where W2 has saturated. A floor is what exact
target draws score: below it a metric cannot tell two samplers apart. The figures draw each metric's floors as grey
lines, the W2 floors on W2's panels and the fine W2 floor on fine W2's.</p>
<p>Timings: each run trains for a wall-time budget (<code>budget s</code>) and reports the seconds it took
(<code>train s</code>); figures and summaries show medians over seeds. Each benchmark is run alone, one at a time;
its section gives the torch threads and, where its result records it, the machine.</p>"""


def build_benchmarks(out: Path, nav: str, style: str) -> Path:
    """Write ``out/benchmarks.html`` and its figures (``out/benchmarks/*.png``) from ``benchmarks/results/*.json``."""
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    for stale in (out / "benchmarks").glob("*.png"):  # figures of results that are gone
        stale.unlink()
    found = defaultdict(list)
    for path in sorted(RESULTS.glob("*.json")):
        found[script_of(path)].append(path)
    ordered = sorted(scripts(), key=lambda script: not found.get(script.stem))  # those with results first
    results = [json.loads(path.read_text()) for paths in found.values() for path in paths]
    sections = "\n".join(_section(script, found.get(script.stem, []), out / "benchmarks") for script in ordered)
    contents = " · ".join(f'<a href="#{s.stem}">{s.stem}</a>' + ("" if found.get(s.stem) else " (not run)")
                          for s in ordered)
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
by the scripts in <code>benchmarks/</code>; each section gives the command that reproduces it.</p>
{_metrics(results)}
<p>{contents}</p>
{sections}
</body></html>
"""
    path = out / "benchmarks.html"
    path.write_text(page, encoding="utf-8")
    return path
