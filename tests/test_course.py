"""The course opens anywhere: saved notebooks are clean, Colab cells and badges agree with the one repository URL,
Binder's environment matches the package, and a Colab-like session runs a notebook with nothing but the package.
The course map agrees with the notebooks; solution cells are hidden, marked and named apart from the student's functions;
the student edition runs all the way through ("Run all"), which one cheap notebook proves end to end; no notebook
asserts on wall time."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import course  # noqa: E402


def _runtime_dependencies() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    return {re.split(r"[<>=!~ \[]", name)[0].lower() for name in re.findall(r'"([^"]+)"', block)}


@pytest.mark.parametrize("path", course.paths(), ids=lambda p: p.name)
def test_saved_notebook_is_clean(path):
    notebook = course.load(path)
    assert "widgets" not in notebook["metadata"], "saved widget state: run `python docs/course.py sync`"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert any(cell["outputs"] for cell in code), "committed without outputs: run `make notebooks`"
    for cell in code:
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"error output committed: {output.get('ename')}"
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), "a progress-bar widget"
            assert not course.PROGRESS.search("".join(output.get("text", ""))), "a progress bar's text was saved"
        assert "NBVAL_" not in "".join(cell["source"]), "nbval markers are not needed with --nbval-lax"


@pytest.mark.parametrize("path", course.paths(), ids=lambda p: p.name)
def test_notebook_has_goals_exercises_and_colab_cell(path):
    notebook = course.load(path)
    markdown = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert "Prerequisites" in markdown and "you will" in markdown, "state prerequisites and learning goals at the top"
    assert "## Exercises" in markdown
    assert notebook == course.synced(notebook, path.name), "badge or install cell out of line: `python docs/course.py sync`"


def test_badges_install_cells_and_url_agree():
    url = course.repository()
    assert url.startswith("https://github.com/")
    assert course.sync(write=False) == [], "run `python docs/course.py sync`"
    readme = (ROOT / "README.md").read_text()
    assert course.colab_badge("00_tour.ipynb") in readme and course.binder_badge() in readme
    for path in course.paths():
        cells = course.load(path)["cells"]
        assert course.colab_badge(path.name) in "".join(cells[0]["source"])
        assert course.install_line().strip() in "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_binder_environment_matches_the_runtime_dependencies():
    text = (ROOT / "environment.yml").read_text()
    conda_names = {"pytorch": "torch"}
    listed = {conda_names.get(name, name).lower() for name in re.findall(r"^\s+- ([A-Za-z][\w.-]*)", text, re.M)}
    listed |= {re.split(r"[<>=!~ ]", name)[0].lower() for name in re.findall(r"^\s+- ([\w-]+[<>=][^\n]*)", text, re.M)}
    missing = _runtime_dependencies() - listed
    assert not missing, f"environment.yml lacks runtime dependencies {sorted(missing)}"
    assert "pytorch=*=cpu*" in text and "conda-forge" in text and "-e ." in text


def test_a_colab_like_session_runs_the_tour_from_the_wheel_alone(tmp_path):
    """Build the wheel, install it with its runtime dependencies (and the kernel Colab provides) into a fresh virtual
    environment outside the repository, and execute 00_tour from an empty folder."""
    import torch

    started = time.perf_counter()
    dist, venv, session = tmp_path / "dist", tmp_path / "venv", tmp_path / "session"
    python = str(venv / "bin" / "python")
    # The test environment already has the build backend: no isolated build environment to download and install.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
                   check=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"  # the CPU wheel, as `make` pins it: pip knows where it lies
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dist), torch_pin], check=True)
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(uv + ["venv", "-q", "--python", sys.executable, str(venv)], check=True)
    # uv (a dev dependency) installs from its cache in seconds where pip takes a minute; bytecode is written on first import.
    subprocess.run(uv + ["pip", "install", "-q", "--python", python, *map(str, dist.glob("*.whl")), "nbclient", "ipykernel"],
                   check=True)
    installed = subprocess.run(uv + ["pip", "list", "-q", "--python", python, "--format=json"], check=True,
                               capture_output=True, text=True).stdout
    names = {package["name"].lower() for package in json.loads(installed)}
    assert not {"pytest", "nbval", "scikit-learn", "torchcfm", "zuko"} & names, "only runtime dependencies belong here"
    session.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_tour.ipynb", session)
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import nbformat, nbclient; nb = nbformat.read('00_tour.ipynb', 4); "
         "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute(); print('executed')"],
        cwd=session, capture_output=True, text=True, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
                                                          **{k: v for k, v in os.environ.items() if k.startswith("OMP_")}},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"Colab-like session: {time.perf_counter() - started:.0f} s, {len(names)} packages installed")


# ---- the course map, the solutions and the student edition -------------------------------------------------------

# The cheapest notebook with an exercise (measured: the student edition of each, executed alone with nbclient).
STUDENT_RUN = "12_inference_scaling.ipynb"


def test_the_course_map_matches_the_notebooks():
    assert course.map_problems() == []
    assert set(course.TRACKS) == {entry.track for entry in course.COURSE}
    readme = (ROOT / "README.md").read_text()
    assert course.course_map("notebooks/") in readme, "run `python docs/course.py sync`"
    tour = "".join("".join(c["source"]) for c in course.load(ROOT / "notebooks" / "00_tour.ipynb")["cells"])
    assert f"{course.MAP_START}\n\n{course.course_map()}\n\n{course.MAP_END}" in tour, "run `python docs/course.py sync`"


@pytest.mark.parametrize("path", course.paths(), ids=lambda p: p.name)
def test_solutions_are_hidden_marked_and_never_overwrite_the_students_function(path):
    notebook = course.load(path)
    assert course.solution_problems(notebook) == []


@pytest.mark.parametrize("path", course.paths(), ids=lambda p: p.name)
def test_run_all_on_the_student_edition_cannot_stop_where_the_full_edition_runs(path):
    notebook = course.load(path)
    assert course.student_problems(notebook) == []
    edition = course.student(notebook)
    removed = sum(course.is_solution(cell) for cell in notebook["cells"])
    assert len(edition["cells"]) == len(notebook["cells"]) - removed
    assert not any(cell.get("outputs") for cell in edition["cells"] if cell["cell_type"] == "code")


def test_no_notebook_asserts_on_wall_time():
    """A GPU runtime or a slow laptop must pass: assert on counts (NFE, passes, steps) and print the times."""
    found = {path.name: course.wall_time_asserts(course.load(path)) for path in course.paths()}
    assert not {name: asserts for name, asserts in found.items() if asserts}


def _cell(source: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": source, "outputs": [],
            "execution_count": 1}


def test_the_solution_transform_marks_hides_renames_and_is_idempotent():
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# title"},
        _cell("def my_step(x):\n    raise NotImplementedError  # your code here\n\n\nexercises.check_step(my_step)\n"),
        _cell("# Solution — open this cell to see one answer\ndef my_step(x):\n    return x + 1\n\n\n"
              "assert exercises.check_step(my_step)\n", tags=("solution",)),
        _cell("def double(y):\n    ### BEGIN SOLUTION\n    return 2 * y\n    ### END SOLUTION\n\n\n"
              "exercises.check_double(double)\n"),
    ], "metadata": {}}
    full = copy.deepcopy(notebook)
    course._with_solutions(full)
    solution = full["cells"][2]
    assert "".join(solution["source"]) == (f"{course.SOLUTION_TITLE}\n{course.BEGIN}\ndef step(x):\n    return x + 1\n"
                                           f"{course.END}\n\n\nassert exercises.check_step(step)\n")
    assert solution["metadata"] == {"tags": ["solution"], "jupyter": {"source_hidden": True}, "cellView": "form"}
    again = copy.deepcopy(full)
    course._with_solutions(again)
    assert again == full
    assert course.solution_problems(full) == [] and course.student_problems(full) == []
    edition = course.student(full)
    assert [c["cell_type"] for c in edition["cells"]] == ["markdown", "code", "code"]
    assert "".join(edition["cells"][2]["source"]) == f"def double(y):\n    {course.STUB}\n\n\nexercises.check_double(double)\n"
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in edition["cells"][1:])
    assert course.solution_blocks(full) == 2
    broken = copy.deepcopy(full)
    broken["cells"].append(_cell("print(step(1))\n"))  # uses what only the solution defines
    broken["cells"].append(_cell("my_step(1)\n"))       # calls the stub outside a checker
    problems = course.student_problems(broken)
    assert any("only a solution cell defines" in p for p in problems) and any("outside a checker" in p for p in problems)


def test_the_student_edition_runs_to_the_end_and_every_checker_says_not_written_yet(tmp_path):
    """One notebook end to end: the full edition runs its stubs too (nbval), but only the student edition runs without
    any solution defined."""
    import nbclient
    import nbformat

    course.write_student(tmp_path, [ROOT / "notebooks" / STUDENT_RUN])
    notebook = nbformat.read(tmp_path / STUDENT_RUN, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises if a cell fails
    checks = [cell for cell in notebook.cells if cell.cell_type == "code" and "exercises.check_" in cell.source]
    assert checks, f"{STUDENT_RUN} has no exercise checker"
    for cell in checks:
        printed = "".join(output.get("text", "") for output in cell.outputs if output.get("output_type") == "stream")
        assert printed.count("not written yet") == cell.source.count("exercises.check_"), printed
