import json

import pytest

from toyflow.cli import main


def test_reflow_writes_its_figures_animation_and_metrics(tmp_path, capsys):
    main(["reflow", "--steps", "30", "--pairs", "200", "--rounds", "1", "--eval-points", "300", "--out", str(tmp_path),
          "--no-progress"])
    for name in ("trajectories.png", "reflow.gif", "reflow.html", "explorer.html", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    from toyflow.explorer import decode

    assert set(decode((tmp_path / "explorer.html").read_text())) == {"1-RF", "2-RF"}
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["round"] for row in result["rounds"]] == ["1-RF", "2-RF"]
    assert {"straightness", "transport cost", "W2 @1", "W2 @100"} <= set(result["rounds"][0])
    assert "| 2-RF |" in capsys.readouterr().out


def test_train_writes_trajectories_and_metrics(tmp_path):
    main(["train", "--steps", "20", "--eval-points", "300", "--out", str(tmp_path), "--no-progress", "--coupling", "ot"])
    assert (tmp_path / "trajectories.png").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["coupling"] == "ot"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reflow", "--rounds", "-1"], "--rounds (reflow rounds after 1-RF) must be >= 0, got -1"),
        (["reflow", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["reflow", "--pairs", "0"], "--pairs must be >= 1, got 0"),
        (["reflow", "--source", "bananas"], "argument --source: invalid choice: 'bananas'"),
        (["train", "--target", "text:"], "argument --target: 'text:': text must be a non-empty string"),
        (["reflow", "--target", "text:   "], "text must hold at least one visible character"),
        (["train", "--source", "image:no-such-picture.png"], "argument --source: 'image:no-such-picture.png'"),
        (["train", "--target", "moons:3"], "only 'text:TEXT' and 'image:PATH' take a value"),
        (["train", "--steps", "-3"], "--steps must be >= 1, got -3"),
        (["train", "--coupling", "magic"], "argument --coupling: invalid choice: 'magic'"),
        (["reflow", "--lr", "0"], "--lr must be > 0, got 0.0"),
        (["train", "--eval-points", "1"], "--eval-points must be >= 2, got 1"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path)] if argv[0] != "fly" else argv)
    assert exit_info.value.code != 0
    text = str(exit_info.value.code) + capsys.readouterr().err
    assert message in text


@pytest.mark.parametrize("command", ["train", "reflow"])
def test_an_out_folder_that_cannot_be_written_is_a_one_line_error_before_training(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--steps", "100000", "--out", str(blocker / "out"), "--no-progress"])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: --out {blocker / 'out'} cannot be written") and "\n" not in message


def test_text_and_image_targets_train_from_the_command_line(tmp_path):
    main(["train", "--source", "gaussian", "--target", "text:RF", "--steps", "20", "--eval-points", "300",
          "--out", str(tmp_path / "text"), "--no-progress"])
    assert json.loads((tmp_path / "text" / "metrics.json").read_text())["target"] == "text:RF"
    assert (tmp_path / "text" / "trajectories.png").stat().st_size > 0

    import matplotlib.image
    import numpy as np

    picture = np.ones((8, 8))
    picture[2:6, 1:7] = 0.0  # a dark bar
    matplotlib.image.imsave(tmp_path / "bar.png", picture, cmap="gray", vmin=0, vmax=1)
    main(["reflow", "--source", "text:toy", "--target", f"image:{tmp_path / 'bar.png'}", "--steps", "20",
          "--pairs", "200", "--rounds", "1", "--eval-points", "300", "--out", str(tmp_path / "image"), "--no-progress"])
    rounds = json.loads((tmp_path / "image" / "metrics.json").read_text())["rounds"]
    assert [row["round"] for row in rounds] == ["1-RF", "2-RF"]


def test_help_says_the_data_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["reflow", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "text:TEXT" in out and "image:PATH" in out and "moons" in out
