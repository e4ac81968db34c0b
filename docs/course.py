"""Housekeeping for the course: where toyflow installs from, the notebooks' first cells and badges, clean
saved outputs, and the static website.

One setting says where toyflow lives: ``Repository`` under ``[project.urls]`` in ``pyproject.toml``. A fork
changes that line and runs ``python docs/course.py sync``; every notebook's Colab install line and "Open in
Colab" badge, and the README's badges, are rewritten from it.

    python docs/course.py sync    # first code cell + badge of every notebook, README badges; strips saved widget
                                  # state, progress-bar text and execution timestamps from the outputs
    python docs/course.py site    # build the course website into out/site (math as MathML, works offline)
    python docs/course.py check   # exit 1 if sync or clean would change anything
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
BADGES = {COLAB_BADGE: "badges/colab.svg", BINDER_BADGE: "badges/binder.svg"}  # offline copies for the site
PROGRESS = re.compile(r"\d+%\|")  # tqdm's text bar


# ---- where toyflow installs from ---------------------------------------------------------------------

def repository() -> str:
    """The repository URL from ``[project.urls]`` in pyproject.toml, e.g. ``https://github.com/owner/name``."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^\[project\.urls\]\s*$(.*?)^Repository\s*=\s*"([^"]+)"', text, re.M | re.S)
    if not match:
        raise SystemExit('pyproject.toml needs Repository = "https://github.com/OWNER/NAME" under [project.urls]')
    return match.group(2).rstrip("/")


def github_path() -> str:
    """``owner/name`` of the repository (Colab and Binder address GitHub repositories this way)."""
    url = repository()
    if not url.startswith("https://github.com/"):
        raise SystemExit(f"Colab and Binder badges need a GitHub repository URL, got {url}")
    return url.removeprefix("https://github.com/")


def colab_badge(notebook: str) -> str:
    link = f"https://colab.research.google.com/github/{github_path()}/blob/main/notebooks/{notebook}"
    return f"[![Open In Colab]({COLAB_BADGE})]({link})"


def binder_badge(notebook: str = "00_tour.ipynb") -> str:
    link = f"https://mybinder.org/v2/gh/{github_path()}/main?labpath=notebooks%2F{notebook}"
    return f"[![Binder]({BINDER_BADGE})]({link})"


def install_line() -> str:
    return f'    %pip install -q "toyflow @ git+{repository()}"'


# ---- notebooks ---------------------------------------------------------------------------------------

def paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(path: Path, notebook: dict) -> None:
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def synced(notebook: dict, name: str) -> dict:
    """The notebook with its badge first in the title cell and the Colab install line in the first code cell."""
    notebook = copy.deepcopy(notebook)
    title = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
    text = re.sub(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n+", "", _source(title))
    _set_source(title, colab_badge(name) + "\n\n" + text)
    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code = _source(first)
    if 'if "google.colab" in sys.modules:' not in code:
        raise SystemExit(f"{name}: the first code cell must install toyflow under `if \"google.colab\" in sys.modules:`")
    _set_source(first, re.sub(r"^ +%pip install -q .*$", install_line(), code, count=1, flags=re.M))
    return notebook


def cleaned(notebook: dict) -> dict:
    """The notebook without saved widget state, widget outputs, tqdm's text bars, execution timestamps or
    ``# NBVAL_*`` markers (the tests run nbval with ``--nbval-lax``, which checks no output unless asked)."""
    notebook = copy.deepcopy(notebook)
    notebook["metadata"].pop("widgets", None)
    for cell in notebook["cells"]:
        cell["metadata"].pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "# NBVAL_" in source:
            _set_source(cell, re.sub(r"^# NBVAL_\w+\n", "", source, flags=re.M))
        cell["outputs"] = [
            output for output in cell["outputs"]
            if "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
            and not (output.get("name") == "stderr" and PROGRESS.search("".join(output.get("text", ""))))
        ]
    return notebook


def readme_badges() -> str:
    return f"{colab_badge('00_tour.ipynb')} {binder_badge()}"


def sync(write: bool = True) -> list[str]:
    """Bring every notebook and the README in line with the repository URL; return what changed."""
    changed = []
    for path in paths():
        notebook = load(path)
        new = cleaned(synced(notebook, path.name))
        if new != notebook:
            changed.append(path.name)
            if write:
                save(path, new)
    readme = ROOT / "README.md"
    text = readme.read_text()
    new_text = re.sub(r"(<!-- badges -->\n).*?(<!-- /badges -->)", lambda m: m.group(1) + readme_badges() + "\n" + m.group(2),
                      text, flags=re.S)
    if new_text != text:
        changed.append("README.md")
        if write:
            readme.write_text(new_text)
    return changed


# ---- the website -------------------------------------------------------------------------------------

NAV_STYLE = """
nav.course { font-family: system-ui, sans-serif; padding: .6rem 1rem; background: #f3f0f8; border-bottom: 1px solid #ddd; }
nav.course a { margin-right: 1.2rem; color: #3b3b8f; }
math { font-size: 1.1em; }
"""
PAGE_STYLE = NAV_STYLE + """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }
img.figure { max-width: 100%; }
"""


def _nav(pages: list[tuple[str, str]], index: int) -> str:
    links = ['<a href="index.html">Course home</a>', '<a href="methods.html">Methods</a>']
    if index > 0:
        links.append(f'<a href="{pages[index - 1][0]}">← {html.escape(pages[index - 1][1])}</a>')
    if index + 1 < len(pages):
        links.append(f'<a href="{pages[index + 1][0]}">{html.escape(pages[index + 1][1])} →</a>')
    return f'<nav class="course">{"".join(links)}</nav>'


def _title(notebook: dict, fallback: str) -> str:
    for cell in notebook["cells"]:
        for line in _source(cell).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return fallback


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab")


MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)
VERBATIM = re.compile(r"(<pre.*?</pre>|<code.*?</code>|<script.*?</script>|<style.*?</style>)", re.S)


def render_math(page: str) -> str:
    """Every ``$…$`` and ``$$…$$`` outside code as MathML (latex2mathml), which browsers draw natively: the site needs
    no MathJax, no fonts and no network. The MathJax loader nbconvert adds is removed."""
    from latex2mathml.converter import convert

    def to_mathml(match: re.Match) -> str:
        block = match.group(1) is not None
        return convert(html.unescape(match.group(1) if block else match.group(2)), display="block" if block else "inline")

    page = re.sub(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", page, flags=re.S)
    parts = VERBATIM.split(page)
    return "".join(part if i % 2 else MATH.sub(to_mathml, part) for i, part in enumerate(parts))


def _localise(page: str) -> str:
    """Links between notebooks point at their pages; badge images at the site's offline copies; no script or style
    sheet from a CDN (the course must work offline)."""
    page = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", page)
    page = re.sub(r'<link[^>]*href="https?://[^"]*"[^>]*/?>', "", page)
    page = re.sub(r'href="(?:\.\./notebooks/|notebooks/)?(\d\d_[\w-]+)\.ipynb"', r'href="\1.html"', page)
    for remote, local in BADGES.items():
        page = page.replace(remote, local)
    return page


def build_site(out: Path) -> list[Path]:
    """Write the website to ``out``: a landing page, one page per notebook and the methods page, math as MathML."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "docs" / "badges", out / "badges", dirs_exist_ok=True)
    shutil.copy(ROOT / "docs" / "demo.png", out / "demo.png")
    exporter = _exporter()
    notebooks = [(p.stem + ".html", _title(load(p), p.stem), p) for p in paths()]
    text = (ROOT / "docs" / "methods.md").read_text()
    methods_cell = {"id": "methods", "cell_type": "markdown", "metadata": {}, "source": text}
    methods = {"cells": [methods_cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    pages = [("methods.html", "Methods", methods)] + [(page, title, load(path)) for page, title, path in notebooks]
    order = [(page, title) for page, title, _ in pages[1:]]
    written = []
    for page, title, notebook in pages:
        body, _ = exporter.from_notebook_node(_as_node(notebook))
        nav = _nav(order, next((i for i, (p, _) in enumerate(order) if p == page), -1))
        body = re.sub(r"(<body[^>]*>)", lambda m, nav=nav: m.group(1) + nav, body, count=1)
        head = f'<link rel="icon" href="data:,"><style>{NAV_STYLE}</style><title>{html.escape(title)} · toyflow</title>'
        body = re.sub(r"<title>.*?</title>", head, body, count=1, flags=re.S)
        (out / page).write_text(render_math(_localise(body)))
        written.append(out / page)
    rows = "\n".join(f'<tr><td><a href="{page}">{html.escape(title)}</a></td></tr>' for page, title, _ in notebooks)
    index = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>toyflow · the course</title>
<style>{PAGE_STYLE}</style></head>
<body>
<h1>toyflow: flow-based generative modelling you can read and run</h1>
<p>Flow matching, rectified flow and reflow, one-step distillation, MeanFlow and normalizing flows on 2D data, each
method in one readable PyTorch module and taught in a notebook that the tests execute top to bottom.</p>
<img class="figure" src="demo.png" alt="Rectified flow: the paths of 1-RF, 2-RF and 3-RF from 8 Gaussians to two moons">
<p><em>The signature picture: the paths of a rectified flow, round after round of reflow, from tangled curves to
straight lines.</em></p>
<h2>The course</h2>
<table><tr><th>notebook</th></tr>
{rows}
</table>
<h2>Reference</h2>
<p><a href="methods.html">Methods</a>: the math of every method in toyflow's time convention.</p>
<p>Source: <a href="{repository()}">{repository()}</a></p>
</body></html>
"""
    (out / "index.html").write_text(index)
    return [out / "index.html"] + written


def _as_node(notebook: dict):
    import nbformat

    return nbformat.reads(json.dumps(notebook), as_version=4)  # joins each cell's source lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["sync", "site", "check"])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "site", help="where `site` writes (%(default)s)")
    args = parser.parse_args(argv)
    if args.command == "site":
        pages = build_site(args.out)
        print(f"wrote {len(pages)} pages to {args.out}")
    elif args.command == "check":
        changed = sync(write=False)
        print("in line" if not changed else "out of line, run `python docs/course.py sync`: " + ", ".join(changed))
        return 1 if changed else 0
    else:
        changed = sync()
        print("changed: " + ", ".join(changed) if changed else "nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
