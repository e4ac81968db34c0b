"""The benchmarks' shared rules (benchmarks/common.py) and the metric-agreement script, on small cases.

The benchmarks themselves are measurements, run by ``make bench``; what is tested here is what makes them fair:
tuning picks the lowest validation score and never a diverged run, a diverged sampler scores NaN instead of
stopping a run, both metrics are reported under the page's column names, zuko's spline bound is in data units,
and the agreement script counts each model once.
"""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import common  # noqa: E402
import metric_agreement  # noqa: E402

from toyflow import data  # noqa: E402


def small_task(n: int = 64) -> common.Task:
    """The task's shape with few points, so a test runs in milliseconds."""
    source, target = data.get("8gaussians"), data.get("moons", noise_type="diagonal")
    g = torch.Generator().manual_seed(0)
    return common.Task(source, target, source.sample(n, g), target.sample(n, g), source.sample(2 * n, g),
                       target.sample(2 * n, g), floor=0.1, iid_floor=0.2, fine_floor=0.03)


def test_tune_picks_the_lowest_validation_score_and_never_a_diverged_run():
    scores = {"a": 0.3, "b": float("nan"), "c": 0.1, "d": 0.2}
    best, rows = common.tune({name: {"name": name} for name in scores}, lambda settings: scores[settings["name"]], "x")
    assert best == "c"
    assert [row["configuration"] for row in rows] == ["a", "b", "c", "d"]
    assert [row["chosen"] for row in rows] == [False, False, True, False]
    only_nan, _ = common.tune({"a": {}, "b": {}}, lambda settings: float("nan"))
    assert only_nan == "a"  # every run diverged: the first, and its NaN is in the table for the reader


def test_evaluate_reports_both_metrics_and_nan_for_a_diverged_sampler():
    task = small_task()
    scores = task.evaluate(lambda x0: task.target.sample(len(x0), torch.Generator().manual_seed(1)), " @ 1")
    assert set(scores) == {"W2 @ 1", "fine W2 @ 1"}
    assert all(0 < value < 5 for value in scores.values()), scores  # target draws against the target: small, not 0
    broken = task.evaluate(lambda x0: x0 * float("nan"))
    assert set(broken) == {"W2", "fine W2"} and all(math.isnan(value) for value in broken.values())
    assert set(task.evaluate(lambda x0: x0, fine=False)) == {"W2"}


def test_fine_w2_is_a_lower_bound_of_w2_on_the_same_samples():
    """The two columns measure the same thing at two resolutions: on equal sets fine W2 never exceeds exact W2."""
    task = small_task()
    samples = task.source.sample(len(task.x1_fine), torch.Generator().manual_seed(2))
    assert common.metrics.fine_w2(samples, task.x1_fine) <= common.metrics.w2(samples, task.x1_fine) + 1e-9


def test_at_nfe_names_columns_for_the_page_and_skips_fine_where_asked():
    task = small_task()
    scores = task.at_nfe(lambda x, t: torch.ones_like(x), (1, 4), fine=(1,))
    assert set(scores) == {"W2 @ 1", "fine W2 @ 1", "W2 @ 4"}


def test_floors_use_the_keys_the_page_reads():
    assert small_task().floors() == {"floor_w2": 0.1, "iid_floor_w2": 0.2, "fine_floor": 0.03}


def test_zuko_nsf_bound_is_in_data_units_and_its_density_integrates_to_one():
    pytest.importorskip("zuko")
    flow = common.ZukoNSF(layers=2, hidden=16, bins=4, bound=10.0)
    assert flow.scale == 2.0  # zuko's [-5, 5] on x / 2 is [-10, 10] in x
    side = torch.linspace(-30, 30, 601)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum() * (side[1] - side[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=0.01)


def test_the_agreement_counts_each_model_once_and_only_where_both_metrics_exist():
    result = {
        "rows": [{"method": "a", "seed": 0, "W2 @ 1": 0.5, "fine W2 @ 1": 0.2, "W2 @ 4": 0.3},
                 {"method": "b", "seed": 0, "W2": 0.9, "fine W2": 0.4, "NLL": 1.0}],
        "summary": [{"method": "a", "seeds": 1, "W2 @ 1": 0.5, "fine W2 @ 1": 0.2}],  # medians: not a model again
    }
    assert metric_agreement.pairs(result) == [{"W2": 0.5, "fine W2": 0.2}, {"W2": 0.9, "fine W2": 0.4}]
    points = [{"W2": w, "fine W2": f} for w, f in ((0.1, 0.05), (0.5, 0.2), (0.6, 0.1), (0.9, 0.4))]
    every, above, near = metric_agreement.agreement(points, iid_floor=0.2)
    assert every["pairs"] == 4 and every["Spearman ρ"] == pytest.approx(0.8)  # one swap among four
    assert above["pairs"] == 3 and above["Spearman ρ"] == pytest.approx(0.5)
    assert near["pairs"] == 1 and near["Spearman ρ"] is None  # too few to rank
