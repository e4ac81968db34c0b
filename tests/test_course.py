"""The course opens anywhere: saved notebooks are clean, Colab cells and badges agree with the one repository URL,
Binder's environment matches the package, and a Colab-like session runs a notebook with nothing but the package."""

from __future__ import annotations

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
