"""Does fine W2 rank models like exact W2? Their Spearman rank correlation over every model the benchmarks scored.

Nothing is trained here: the script reads the results the other benchmarks wrote on torchcfm's task
(benchmarks/results/*.json with its three floors; run them first) and takes every per-seed row that has both an
exact and a fine W2 at the same NFE (``"W2 @ k"`` and ``"fine W2 @ k"``, or ``"W2"`` and ``"fine W2"``), one pair per
model and NFE. It reports the rank correlation over
all pairs, over the pairs whose exact W2 is above twice its i.i.d. floor, where exact W2 can tell models apart, and
over the rest, where its sampling noise is as large as the differences it would rank, with each metric's floor. Writes
benchmarks/results/metric_agreement.json.

    python benchmarks/metric_agreement.py
"""

from __future__ import annotations

import json
import math
import re

from common import RESULTS, parse, parser, save
from scipy.stats import spearmanr

from toyflow import plot

FLOORS = ("floor_w2", "iid_floor_w2", "fine_floor")  # what benchmarks/common.py's Task records
EXACT = re.compile(r"^W2(?P<at> ?@ ?\d+)?$")


def pairs(result: dict) -> list[dict]:
    """``{"W2": …, "fine W2": …}`` for every per-seed row (a row with a ``"seed"``) and NFE of a result."""
    found = []
    for table in result.values():
        if not (isinstance(table, list) and table and all(isinstance(row, dict) for row in table)):
            continue
        for row in table:
            if "seed" not in row:
                continue  # a summary over seeds: its medians would count a model twice
            for column, value in row.items():
                match = EXACT.match(column)
                fine = row.get("fine " + column)
                if match and isinstance(value, float) and isinstance(fine, float) and math.isfinite(value + fine):
                    found.append({"W2": value, "fine W2": fine})
    return found


def agreement(points: list[dict], iid_floor: float) -> list[dict]:
    """The Spearman correlation over all ``points``, over those whose W2 is above twice ``iid_floor`` (where exact W2
    can rank them) and over the rest (near the floor, where W2's sampling noise takes over)."""
    limit = 2 * iid_floor
    groups = {"every model": points,
              f"W2 > 2 × i.i.d. floor ({limit:.3f})": [p for p in points if p["W2"] > limit],
              f"W2 ≤ 2 × i.i.d. floor ({limit:.3f})": [p for p in points if p["W2"] <= limit]}
    rows = []
    for name, chosen in groups.items():
        rho = spearmanr([p["W2"] for p in chosen], [p["fine W2"] for p in chosen]).statistic if len(chosen) > 2 else None
        rows.append({"models": name, "pairs": len(chosen), "Spearman ρ": rho})
    return rows


def main() -> None:
    args, started = parse(parser(__doc__))
    points, floors, sources = [], {}, []
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem == "metric_agreement":
            continue
        result = json.loads(path.read_text())
        found = pairs(result)
        if found and all(isinstance(result.get(key), float) for key in FLOORS):  # torchcfm's task: its three floors
            points += found
            floors = {key: result[key] for key in FLOORS}
            sources.append({"result": path.name, "pairs": len(found)})
    if not points:
        raise SystemExit(f"no result in {RESULTS} has both W2 and fine W2: run the other benchmarks first")
    rows = agreement(points, floors["iid_floor_w2"])
    print(plot.markdown_table(sources), "\n")
    print(f"floors: exact W2 (2,000 points, i.i.d. vs the reference) {floors['iid_floor_w2']:.3f}; "
          f"fine W2 (40,000 points) {floors['fine_floor']:.4f}, {floors['iid_floor_w2'] / floors['fine_floor']:.1f}× lower\n")
    print(plot.markdown_table(rows, 3))
    print("saved", save("metric_agreement", {"settings": vars(args), **floors, "sources": sources, "agreement": rows},
                        started))


if __name__ == "__main__":
    main()
