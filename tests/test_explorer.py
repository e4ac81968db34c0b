import json
import re

import pytest
import torch

from toyflow import metrics, plot, solvers
from toyflow.closed_form import GaussianToGaussian
from toyflow.explorer import LEVELS, crossing_share, decode, explorer, path_metrics

CASE = GaussianToGaussian()


def _paths(n: int = 700, steps: int = 100) -> dict[str, torch.Tensor]:
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    curved = solvers.integrate(CASE.velocity, x0, steps, return_path=True).path  # (steps + 1, n, 2)
    straight = x0 + torch.linspace(0, 1, steps + 1)[:, None, None] * (curved[-1] - x0)
    return {"1-RF": curved, "2-RF": straight}


def test_crossing_share_closed_forms():
    cross = crossing_share(torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    parallel = crossing_share(torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    apart = crossing_share(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([[1.0, 1.0], [6.0, 4.0]]))
    assert (cross, parallel, apart) == (1.0, 0.0, 0.0)
    # three segments through one common middle point cross pairwise; a fourth far away crosses none: 3 of 6 pairs
    x0 = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [-1.0, -1.2], [10.0, 10.0]])
    x1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.2], [11.0, 10.0]])
    assert crossing_share(x0, x1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shape"):
        crossing_share(torch.zeros(3, 2), torch.zeros(4, 2))


def test_the_page_is_self_contained_small_and_decodes_to_the_paths():
    paths = _paths()
    page = plot.explorer(paths, paths["1-RF"][0], CASE.target.sample(400), title="a <test>").html()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "the page must not load anything remote"
    assert "http://" not in page and "https://" not in page
    assert len(page.encode()) < 600_000, f"two rounds of 500 paths should stay small, got {len(page.encode())} bytes"
    assert "a &lt;test&gt;" in page
    decoded = decode(page)
    assert set(decoded) == {"1-RF", "2-RF"}
    frames = torch.linspace(0, 100, 61).round().long().unique()
    for name, path in paths.items():
        assert decoded[name].shape == (61, 500, 2)
        box = plot.limits(*(p[:, :500] for p in paths.values()), paths["1-RF"][0], margin=0.04)
        step = (box[1] - box[0]) / LEVELS
        assert abs(decoded[name] - path[frames, :500].double().numpy()).max() <= step / 2 + 1e-9


def test_each_round_carries_its_numbers_and_two_explorers_do_not_share_ids():
    paths = _paths(200, 20)
    target = CASE.target.sample(300, torch.Generator().manual_seed(1))
    page = explorer(paths, paths["1-RF"][0], target)
    numbers = {r["name"]: r["metrics"] for r in page.data["rounds"]}
    for name in paths:
        assert set(numbers[name]) == {"straightness", "W2 @1 step", "crossing share"}
    assert numbers["2-RF"]["straightness"] == pytest.approx(0, abs=1e-6)
    # read off an Euler path, straightness and one-step W2 are what metrics computes from the field itself
    x0 = paths["1-RF"][0]
    euler = path_metrics(paths["1-RF"], target)
    assert euler["straightness"] == pytest.approx(metrics.straightness(CASE.velocity, x0, steps=20), rel=1e-4)
    assert euler["W2 @1 step"] == pytest.approx(metrics.w2(solvers.integrate(CASE.velocity, x0, 1).x, target), rel=1e-4)
    assert page.data["independent"] is not None and "independent pairs" in page.data["note"]
    one, two = page._repr_html_(), page._repr_html_()
    ids = [re.search(r'id="(tfx\w+)"', html).group(1) for html in (one, two)]
    assert ids[0] != ids[1] and f"getElementById('{ids[0]}')" in one
    given = explorer(paths, x0, target, {"1-RF": {"straightness": 1.0}, "2-RF": {"straightness": 0.0}})
    assert given.data["rounds"][0]["metrics"] == {"straightness": 1.0, "crossing share": numbers["1-RF"]["crossing share"]}
    json.dumps(given.data)  # the embedded data is plain JSON


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="paths_by_round"):
        explorer({}, torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="same T"):
        explorer({"a": torch.zeros(5, 3, 2), "b": torch.zeros(6, 3, 2)}, torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="metrics_by_round must have the rounds"):
        explorer({"1-RF": torch.zeros(5, 3, 2)}, torch.zeros(3, 2), torch.zeros(3, 2), {"2-RF": {}})


@pytest.mark.parametrize("name", ["two_gaussians", "8gaussians_moons"])
def test_the_sites_precomputed_explorers_are_small_and_back_the_landing_pages_words(name):
    """The landing page says reflow rounds run straighter than 1-RF and land closer to the target in one step."""
    from pathlib import Path

    from toyflow.explorer import read

    page = (Path(__file__).resolve().parent.parent / "docs" / "explorer" / f"{name}.html").read_text(encoding="utf-8")
    assert len(page.encode()) < 1_000_000, f"{name}: {len(page.encode())} bytes, the site's explorers should stay < 1 MB"
    rounds = read(page)["rounds"]
    assert [r["name"] for r in rounds] == ["1-RF", "2-RF", "3-RF"]
    first, later = rounds[0]["metrics"], [r["metrics"] for r in rounds[1:]]
    for numbers in later:
        assert numbers["straightness"] < first["straightness"], f"{name}: a reflow round is not straighter than 1-RF"
        assert numbers["W2 @1 step"] < first["W2 @1 step"], f"{name}: a reflow round's one step is not closer than 1-RF's"
