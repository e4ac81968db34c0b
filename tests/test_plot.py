import matplotlib.pyplot as plt
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
    assert len(plot.trajectories(_path(), axes[1]).collections) == 3  # lines, start, end
    assert len(plot.pairs(torch.randn(9, 2), torch.randn(9, 2), axes[2]).collections) == 3
    assert len(plot.vector_field(CASE.velocity, 0.5, axes[3]).collections) == 1
    assert len(plot.density(CASE.target.log_prob, axes[4]).images) == 1
    ax = plot.nfe_curve({"euler": {1: 2.0, 2: 1.0, 4: 0.5}})
    assert len(ax.get_lines()) == 1
    plt.close("all")


def test_animation_has_at_most_the_frames_asked_and_saves_a_gif(tmp_path):
    anim = plot.animate({"a": _path(), "b": _path()}, frames=8)
    html = plot.to_html(anim)
    assert html.count("data:image/png;base64") == 8
    plot.save_gif(anim, str(tmp_path / "flow.gif"))
    assert (tmp_path / "flow.gif").read_bytes()[:6] == b"GIF89a"
    plt.close("all")


def test_markdown_table_rounds_floats_and_keeps_other_values():
    text = plot.markdown_table([{"method": "euler", "nfe": 4, "w2": 0.12345}, {"method": "rk4", "nfe": 4, "w2": 0.1}])
    assert text.splitlines() == ["| method | nfe | w2 |", "|---|---|---|", "| euler | 4 | 0.123 |", "| rk4 | 4 | 0.100 |"]
