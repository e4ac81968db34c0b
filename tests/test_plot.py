import matplotlib.pyplot as plt
import pytest
import torch

from toyflow import plot, solvers
from toyflow.closed_form import GaussianToGaussian

CASE = GaussianToGaussian()


def _path():
    return solvers.integrate(CASE.velocity, torch.randn(50, 2), 20, return_path=True).path


def test_static_figures_draw_their_artists():
    fig, axes = plot.panels(5, titles=list("abcde"), rows=2)
    assert len(axes) == 5 and axes[0].get_title() == "a"
    assert len(plot.samples(torch.randn(30, 2), axes[0]).collections) == 1
    assert len(plot.trajectories(_path(), axes[1]).collections) == 5  # source, target backdrops; lines, start, end
    assert len(plot.pairs(torch.randn(9, 2), torch.randn(9, 2), axes[2]).collections) == 3
    assert len(plot.vector_field(CASE.velocity, 0.5, axes[3]).collections) == 1
    assert len(plot.density(CASE.target.log_prob, axes[4]).images) == 1
    ax = plot.nfe_curve({"euler": {1: 2.0, 2: 1.0, 4: 0.5}})
    assert len(ax.get_lines()) == 1 and ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")


def test_limits_hold_every_point_in_a_square_box():
    a, b = torch.tensor([[0.0, 0.0], [1.0, 4.0]]), torch.tensor([[-2.0, 1.0]])
    xmin, xmax, ymin, ymax = plot.limits(a, b)
    assert xmin < -2 and xmax > 1 and ymin < 0 and ymax > 4
    assert abs((xmax - xmin) - (ymax - ymin)) < 1e-5
    with pytest.raises(ValueError, match="finite"):
        plot.limits(torch.full((3, 2), float("nan")))


def test_trajectories_nothing_clipped_and_a_time_colour_bar():
    path = _path() * 10 + 30  # far from the old fixed [-7, 7] box
    ax = plot.trajectories(path)
    x0, x1 = ax.get_xlim()
    points = path.reshape(-1, 2)
    assert x0 <= points[:, 0].min() and points[:, 0].max() <= x1
    assert len(ax.figure.axes) == 2 and ax.figure.axes[1].get_ylabel() == "time t"
    plt.close("all")


def test_path_style_draws_fewer_paths_when_source_and_target_overlap():
    far = solvers.integrate(GaussianToGaussian(mean=(6.0, 0.0)).velocity, torch.randn(500, 2), 10, return_path=True).path
    near = torch.stack([torch.randn(500, 2), torch.randn(500, 2) * 1.01], 0)
    assert plot.overlap(far[0], far[-1]) < 0.05 < 0.5 < plot.overlap(near[0], near[-1])
    assert plot.path_style(far)["count"] > plot.path_style(near)["count"]


def test_rounds_figure_shares_limits_and_carries_titles_legend_colour_bar():
    fig, axes = plot.rounds({"1-RF": _path(), "2-RF": _path() * 2}, titles=["1-RF: S 1.0", "2-RF: S 0.1"])
    assert [ax.get_title() for ax in axes] == ["1-RF: S 1.0", "2-RF: S 0.1"]
    assert axes[0].get_xlim() == axes[1].get_xlim()
    assert fig.legends and any(ax.get_ylabel() == "time t" for ax in fig.axes)
    plt.close("all")


def test_animation_has_at_most_the_frames_asked_and_saves_a_gif(tmp_path):
    anim = plot.animate({"a": _path(), "b": _path()}, frames=8)
    html = plot.to_html(anim)
    assert html.count("data:image/png;base64") == 8
    plot.save_gif(anim, str(tmp_path / "flow.gif"))
    assert (tmp_path / "flow.gif").read_bytes()[:6] == b"GIF89a"
    gif = plot.show(plot.animate({"a": _path()}, frames=5))
    assert gif.data[:6] == b"GIF89a" and gif._repr_html_().startswith('<img src="data:image/gif;base64,R0lGOD')
    with pytest.raises(ValueError, match="frames"):
        plot.animate({"a": _path()}, frames=61)
    plt.close("all")


def test_markdown_table_rounds_floats_and_keeps_other_values():
    text = plot.markdown_table([{"method": "euler", "nfe": 4, "w2": 0.12345}, {"method": "rk4", "nfe": 4, "w2": 0.1}])
    assert text.splitlines() == ["| method | nfe | w2 |", "|---|---|---|", "| euler | 4 | 0.123 |", "| rk4 | 4 | 0.100 |"]


def test_markdown_table_keeps_a_column_that_only_some_rows_have():
    text = plot.markdown_table([{"method": "a", "w2": 0.5}, {"method": "b", "w2": 0.25, "train s": 3.0}])
    assert text.splitlines()[0] == "| method | w2 | train s |"
    assert text.splitlines()[2] == "| a | 0.500 |  |"
