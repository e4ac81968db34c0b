"""Housekeeping for the course: the course map, where toyflow installs from, the notebooks' first cells and badges,
the solution cells, clean saved outputs, the student edition and the static website.

One setting says where toyflow lives: ``Repository`` under ``[project.urls]`` in ``pyproject.toml``. A fork
changes that line and runs ``python docs/course.py sync``; every notebook's Colab install line and "Open in
Colab" badge, and the README's badges, are rewritten from it. The course map (tracks, one line per notebook, exact
prerequisites) is ``COURSE`` below; ``sync`` writes it into the README and into ``00_tour``'s "Map of the course".

    python docs/course.py sync [NB ...]  # course map, first code cell + badge of every notebook, solution cells
                                         # (nbgrader markers, hidden in Jupyter and Colab), README badges and map;
                                         # strips saved widget state, progress-bar text and execution timestamps
    python docs/course.py site           # build the course website into out/site (math as MathML, works offline);
                                         # its landing page opens with the reflow explorers of docs/explorer/,
                                         # precomputed by `python docs/explorer.py`; with the API reference (pdoc,
                                         # docs/api.py) and the benchmarks page from benchmarks/results/*.json
                                         # (docs/benchmarks_page.py)
    python docs/course.py student [--out out/student] [--execute]
                                         # the student edition: solutions removed, outputs cleared; --execute runs
                                         # every student notebook and prints what each exercise checker said
    python docs/course.py check          # exit 1 if sync would change anything or the course breaks a rule
"""

from __future__ import annotations

import argparse
import ast
import copy
import html
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
BADGES = {COLAB_BADGE: "badges/colab.svg", BINDER_BADGE: "badges/binder.svg"}  # offline copies for the site
PROGRESS = re.compile(r"\d+%\|")  # tqdm's text bar


# ---- the course map: the one source of the README's table and 00_tour's map -------------------------------

@dataclass(frozen=True)
class Notebook:
    """One notebook of the course: its file stem, its track, what it teaches (one line) and the notebooks it needs
    (two-digit numbers, exactly those its "Prerequisites" line names)."""

    stem: str
    track: str
    about: str
    needs: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        return self.stem[:2]


TRACKS = {  # track: what it is about, for the sentence above the map
    "core": "flow matching → couplings → reflow → diffusion as a flow → distillation → MeanFlow and fast generators",
    "likelihood": "exact likelihoods",
    "after training": "more from a trained flow at sampling time",
    "control": "steering a flow towards a condition or a reward",
    "latent": "flow matching in an autoencoder's latent space",
    "beyond the plane": "the capstone: the same code on 8×8 digits, 64 dimensions",
}
COURSE = (
    Notebook("00_tour", "core", "train a flow from 8 Gaussians to two moons and watch it move; W2, its sampling floor, NFE"),
    Notebook("01_flow_matching", "core", "the path, the loss, conditional vs marginal velocity; the Gaussian case solved "
             "exactly; Euler vs Heun vs RK4 at equal NFE", ("00",)),
    Notebook("02_couplings", "core", "independent vs minibatch OT vs Sinkhorn vs W-CFM: straightness, transport cost, W2 "
             "at 1–8 NFE; W-CFM's tilted marginals", ("00", "01")),
    Notebook("03_rectified_flow", "core", "reflow, round after round: from tangled curves to straight lines", ("01", "02")),
    Notebook("04_diffusion_and_flows", "core", "affine paths (linear, VP), converting between data, noise, velocity and "
             "score; Tweedie's formula; DDIM is Euler on a schedule", ("01",)),
    Notebook("05_distillation", "core", "one-step distillation, Lee et al.'s improvements, SlimFlow, rectified diffusion",
             ("03", "04")),
    Notebook("06_transfer", "core", "reflow between two data sets", ("02", "03")),
    Notebook("07_meanflow", "core", "MeanFlow and SplitMeanFlow, and one table of every one-step method", ("01", "02", "05")),
    Notebook("08_fast_generators", "core", "flow maps distilled without data, blockwise flow matching, every few-step "
             "method in one table", ("01", "02", "03", "05", "07")),
    Notebook("09_normalizing_flows", "likelihood", "RealNVP, MAF, a neural spline flow and a flow-matching CNF: exact "
             "likelihoods in the same units", ("00", "01")),
    Notebook("10_tarflow", "likelihood", "an autoregressive transformer flow; sequential vs Jacobi vs Gauss–Seidel–Jacobi "
             "decoding, where Jacobi pays off; STARFlow", ("09",)),
    Notebook("11_sampling", "after training", "an SDE with the ODE's marginals, stochastic interpolants, BOSS step "
             "schedules, FlowTurbo's refiner, inversion", ("01", "02", "03", "04")),
    Notebook("12_inference_scaling", "after training", "more compute at sampling time for a reward: best-of-N, particles, "
             "rollover budget forcing", ("01", "11")),
    Notebook("13_guidance", "control", "class-conditional flows, classifier-free guidance and RAAG, condition-aware OT "
             "(C2OT), steering, restoration", ("01", "02", "03")),
    Notebook("14_reward_finetuning", "control", "Flow-GRPO, ReinFlow, AWM, RWR and Flow-DPO on a 2D reward; "
             "over-optimisation and the KL weight", ("01", "11", "13")),
    Notebook("15_latent_flow_matching", "latent", "an autoencoder and flow matching in its latent space, against flow "
             "matching in 32 dimensions", ("01", "08")),
    Notebook("16_digits", "beyond the plane", "flow matching, one reflow round and one-step generation on scikit-learn's "
             "8×8 digits, with quality, classifier confidence and memorisation measured against their floors",
             ("01", "03", "05")),
)
MAP_START, MAP_END = "<!-- course -->", "<!-- /course -->"  # invisible in Markdown: the generated map sits between


def course_map(prefix: str = "") -> str:
    """The course map as Markdown: one table, grouped by track, links to the notebooks at ``prefix`` (``"notebooks/"``
    from the README, ``""`` from a notebook), each notebook's prerequisites in the last column."""
    first, *others = TRACKS
    branches = [f"**{track}** ({TRACKS[track]})" for track in others]
    lines = [f"{len(TRACKS)} tracks: **{first}** ({TRACKS[first]}) is the spine; {', '.join(branches[:-1])} and {branches[-1]} "
             "branch off it. *needs* lists exactly the notebooks each one builds on.", "",
             "| track | notebook | what you learn | needs |", "|---|---|---|---|"]
    for track in TRACKS:
        for i, entry in enumerate(e for e in COURSE if e.track == track):
            label = f"**{track}**" if i == 0 else ""
            needs = ", ".join(entry.needs) or "—"
            lines.append(f"| {label} | [`{entry.stem}`]({prefix}{entry.stem}.ipynb) | {entry.about} | {needs} |")
    return "\n".join(lines)


def _between_markers(text: str, content: str) -> str:
    """``text`` with everything between the map markers replaced by ``content`` (blank lines around it, so that
    Markdown sees a table)."""
    pattern = re.compile(re.escape(MAP_START) + r".*?" + re.escape(MAP_END), re.S)
    return pattern.sub(lambda _: f"{MAP_START}\n\n{content}\n\n{MAP_END}", text, count=1)


def _with_map(text: str) -> str:
    """A "Map of the course" Markdown cell with the generated map: between the markers when they are there, else in
    place of the table that follows the heading."""
    if MAP_START not in text:
        match = re.search(r"(## Map of the course\n\n)((?:\|.*\n?)+)", text)
        if not match:
            return text
        text = text[:match.start(2)] + f"{MAP_START}\n{MAP_END}\n\n" + text[match.end(2):].lstrip("\n")
    return _between_markers(text, course_map())


PREREQUISITE = re.compile(r"(?<![\w.,])(\d\d)(?![\d.,])")


def prerequisites(notebook: dict) -> tuple[str, ...]:
    """The two-digit notebook numbers named on the notebook's "Prerequisites" line, in order."""
    for cell in notebook["cells"]:
        for line in _source(cell).splitlines():
            if "Prerequisites" in line:
                return tuple(dict.fromkeys(PREREQUISITE.findall(line)))
    return ()


def map_problems() -> list[str]:
    """Where the notebooks and the course map disagree: a notebook missing from either, or other prerequisites."""
    on_disk = {path.stem: path for path in paths()}
    problems = [f"{stem}.ipynb is not in the course map (docs/course.py COURSE)" for stem in on_disk
                if stem not in {e.stem for e in COURSE}]
    for entry in COURSE:
        if entry.stem not in on_disk:
            problems.append(f"the course map lists {entry.stem}, but notebooks/{entry.stem}.ipynb does not exist")
            continue
        named = prerequisites(load(on_disk[entry.stem]))
        if sorted(named) != sorted(entry.needs):
            problems.append(f"{entry.stem}: its Prerequisites line names {', '.join(named) or 'none'}, the course map "
                            f"says {', '.join(entry.needs) or 'none'}")
        later = [n for n in entry.needs if n >= entry.number]
        if later:
            problems.append(f"{entry.stem} needs later notebooks: {', '.join(later)}")
    return problems


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
    """The notebook with its badge first in the title cell, the Colab install line in the first code cell, the course
    map in a "Map of the course" cell, and its solution cells marked and hidden (see ``_with_solutions``)."""
    notebook = copy.deepcopy(notebook)
    title = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
    text = re.sub(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n+", "", _source(title))
    _set_source(title, colab_badge(name) + "\n\n" + text)
    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code = _source(first)
    if 'if "google.colab" in sys.modules:' not in code:
        raise SystemExit(f"{name}: the first code cell must install toyflow under `if \"google.colab\" in sys.modules:`")
    _set_source(first, re.sub(r"^ +%pip install -q .*$", install_line(), code, count=1, flags=re.M))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and "## Map of the course" in _source(cell):
            _set_source(cell, _with_map(_source(cell)))
    _with_solutions(notebook)
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


def sync(write: bool = True, only: list[Path] | None = None) -> list[str]:
    """Bring every notebook (or those in ``only``) and the README in line with the repository URL and the course map;
    return what changed."""
    changed = []
    for path in only or paths():
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
    new_text = _between_markers(new_text, course_map("notebooks/"))
    if new_text != text:
        changed.append("README.md")
        if write:
            readme.write_text(new_text)
    return changed


# ---- exercises: solution cells, the student edition, and the static checks on them ------------------------

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"  # nbgrader's markers
STUB = "raise NotImplementedError  # your code here"
SOLUTION_TITLE = "# @title Solution — double-click to open"  # Colab shows this title on a hidden "form" cell
ANSWER_TITLE = "# @title Answer — double-click to open"  # the same for the answer to an open question
_OLD_TITLE = re.compile(r"^# (?:@title )?(Solution|Answer)\b.*$")


def is_solution(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "solution" in cell["metadata"].get("tags", [])


def _python(source: str) -> str:
    """A code cell as plain Python: IPython's magics (``%pip …``) turned into calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # no IPython: magics only appear in the first (install) cell
        return re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M)
    return TransformerManager().transform_cell(source)


def _tree(cell: dict) -> ast.Module | None:
    try:
        return ast.parse(_python(_source(cell)))
    except SyntaxError:
        return None


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a cell binds in the notebook's namespace (functions, classes, assignments, imports, loop variables)."""
    names: set[str] = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names.update(_targets(target))
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
                names.update(_targets(node.target))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    names.update(_targets(item.optional_vars) if item.optional_vars else ())
            names.update(n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, []) or [])

    visit(tree.body)
    return names


def _defined_functions(tree: ast.Module) -> list[str]:
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _own_name(name: str, taken: set[str]) -> str:
    """A name for a solution function that no other cell uses: ``my_score`` → ``score`` if free, else ``score_solution``."""
    base = name.removeprefix("my_")
    if base != name and base not in taken:
        return base
    candidate, k = f"{base}_solution", 2
    while candidate in taken:
        candidate, k = f"{base}_solution{k}", k + 1
    return candidate


def _marked(source: str) -> str:
    """A solution cell's code as the full edition shows it: Colab's form title first (``Answer`` for the answer to an
    open question, whose first line said so), nbgrader's markers around the solution (everything before the first
    statement that calls a checker, ``assert exercises.check_…``), that statement and the rest outside them."""
    lines = source.splitlines()
    title = SOLUTION_TITLE
    while lines and (_OLD_TITLE.match(lines[0]) or not lines[0].strip()):
        if (match := _OLD_TITLE.match(lines.pop(0))) and match.group(1) == "Answer":
            title = ANSWER_TITLE
    if not any(line.strip() == BEGIN for line in lines):
        try:
            tree = ast.parse(_python("\n".join(lines)))  # a line magic stays one line
        except SyntaxError:
            tree = None
        body = tree.body if tree else []
        first_check = next((node.lineno - 1 for node in body if "exercises.check_" in ast.unparse(node)), len(lines))
        if body and first_check > body[0].lineno - 1:
            solution = lines[:first_check]
            while solution and not solution[-1].strip():
                solution.pop()
            rest = lines[first_check:]
            lines = [BEGIN, *solution, END] + (["", "", *rest] if rest else [])
    return "\n".join([title, *lines]) + ("\n" if source.endswith("\n") else "")


def _with_solutions(notebook: dict) -> None:
    """In place: every solution cell hidden in Jupyter (``source_hidden``) and Colab (a form cell with a title), its
    solution between nbgrader's markers, and every function it defines under a name no other cell defines (running
    the solution then never overwrites the student's function). Idempotent."""
    cells = notebook["cells"]
    others = [c for c in cells if c["cell_type"] == "code" and not is_solution(c)]
    defined = set().union(*(top_level_names(t) for c in others if (t := _tree(c)) is not None))
    used = set().union(*(set(re.findall(r"[A-Za-z_]\w*", _source(c))) for c in cells if c["cell_type"] == "code"))
    for cell in cells:
        if not is_solution(cell):
            continue
        tree = _tree(cell)
        source = _source(cell)
        for name in _defined_functions(tree) if tree else []:
            if name in defined:
                new = _own_name(name, used | defined)
                used.add(new)
                source = re.sub(rf"\b{re.escape(name)}\b", new, source)
        _set_source(cell, _marked(source))
        cell["metadata"].setdefault("jupyter", {})["source_hidden"] = True
        cell["metadata"]["cellView"] = "form"


def _unsolved(source: str) -> str:
    """Code between nbgrader's markers replaced by the stub, at the indentation of the BEGIN marker."""
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*$", re.M | re.S)
    return pattern.sub(lambda m: m.group(1) + STUB, source)


STUDENT_NOTE = ("> **Student edition.** The solutions are removed. Write each exercise's function in its cell and run the "
                "cell: the checker it calls says what is wrong, or that it is right.\n\n")


def student(notebook: dict) -> dict:
    """The student edition of a (synced) notebook: solution cells dropped, code between nbgrader's markers replaced by
    ``raise NotImplementedError``, outputs cleared, the Colab badge (it opens the full edition) replaced by a note."""
    notebook = copy.deepcopy(notebook)
    cells = []
    for cell in notebook["cells"]:
        if is_solution(cell):
            continue
        if cell["cell_type"] == "code":
            _set_source(cell, _unsolved(_source(cell)))
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    notebook["cells"] = cells
    title = next(c for c in cells if c["cell_type"] == "markdown")
    text = re.sub(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n+", "", _source(title))
    _set_source(title, text if text.startswith(STUDENT_NOTE) else STUDENT_NOTE + text)
    return notebook


def write_student(out: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student edition of every notebook (of the synced full edition) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks or paths():
        target = out / path.name
        save(target, student(cleaned(synced(load(path), path.name))))
        written.append(target)
    return written


def solution_blocks(notebook: dict) -> int:
    """How many solutions the student edition removes: solution cells plus marked blocks in other cells."""
    return sum(1 if is_solution(c) else _source(c).count(BEGIN) for c in notebook["cells"] if c["cell_type"] == "code")


def _checker_calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "exercises" and n.func.attr.startswith("check_")]


def solution_problems(notebook: dict) -> list[str]:
    """What is wrong with the full edition's solution cells (empty when nothing is)."""
    problems = []
    cells = notebook["cells"]
    others = [c for c in cells if c["cell_type"] == "code" and not is_solution(c)]
    defined = set().union(*(top_level_names(t) for c in others if (t := _tree(c)) is not None))
    for i, cell in enumerate(cells):
        if not is_solution(cell):
            continue
        where, source, meta = f"cell {i}", _source(cell), cell["metadata"]
        if not meta.get("jupyter", {}).get("source_hidden"):
            problems.append(f"{where}: not hidden in Jupyter (metadata jupyter.source_hidden)")
        if meta.get("cellView") != "form" or not source.startswith("# @title"):
            problems.append(f"{where}: not hidden in Colab (metadata cellView: form and a first line `# @title …`)")
        lines = [line.strip() for line in source.splitlines()]
        if BEGIN not in lines or END not in lines or lines.index(BEGIN) > lines.index(END):
            problems.append(f"{where}: no `{BEGIN}` … `{END}` around the solution")
        elif any("exercises.check_" in line for line in lines[lines.index(BEGIN):lines.index(END)]):
            problems.append(f"{where}: the `assert exercises.check_…` belongs after `{END}`")
        tree = _tree(cell)
        if tree is None:
            problems.append(f"{where}: not valid Python")
            continue
        functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        clash = sorted(functions & defined)
        if clash:
            problems.append(f"{where}: defines {', '.join(clash)}, which another cell defines too: running the solution "
                            "would overwrite the student's version")
    return problems


def student_problems(full: dict) -> list[str]:
    """Why "Run all" on the student edition of ``full`` could stop where the full edition runs (empty when it cannot):
    a solution left in, a stub not followed by its checker, a stub used other than by a checker, a stub raising outside
    a function, or a name that only solution cells define used elsewhere."""
    problems = []
    edition = student(full)
    code = [(i, c) for i, c in enumerate(edition["cells"]) if c["cell_type"] == "code"]
    for i, cell in code:
        if is_solution(cell) or BEGIN in _source(cell) or END in _source(cell):
            problems.append(f"student cell {i}: a solution is left in")
    trees = {i: _tree(c) for i, c in code}
    stubs: set[str] = set()
    for k, (i, _cell) in enumerate(code):
        tree = trees[i]
        if tree is None:
            problems.append(f"student cell {i}: not valid Python")
            continue
        raising = {id(n) for n in ast.walk(tree) if isinstance(n, ast.Raise) and n.exc is not None
                   and "NotImplementedError" in ast.unparse(n.exc)}
        if not raising:
            continue
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if id(n) in raising}
        if raising - inside:
            problems.append(f"student cell {i}: raises NotImplementedError outside a function, so Run all stops there")
        names = [f.name for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and any(id(n) in raising for n in ast.walk(f))]
        stubs.update(names)
        nxt = trees.get(code[k + 1][0]) if k + 1 < len(code) else None
        checked = {a.id for t in (tree, nxt) if t is not None for call in _checker_calls(t) for a in call.args
                   if isinstance(a, ast.Name)}
        for name in names:
            if name not in checked:
                problems.append(f"student cell {i}: the stub `{name}` is not passed to an `exercises.check_…` call in "
                                "this cell or the next")
    for i, tree in trees.items():  # a stub may only be handed to a checker (which catches NotImplementedError)
        if tree is None:
            continue
        passed = {id(a) for call in _checker_calls(tree) for a in call.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in stubs and id(node) not in passed:
                problems.append(f"student cell {i}: uses the stub `{node.id}` outside a checker call, which would raise")
    only_solutions = set()
    full_code = [c for c in full["cells"] if c["cell_type"] == "code"]
    for cell in full_code:
        if is_solution(cell) and (tree := _tree(cell)) is not None:
            only_solutions |= top_level_names(tree)
    bound = set()
    for cell in full_code:
        if not is_solution(cell) and (tree := _tree(cell)) is not None:
            bound |= top_level_names(tree) | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                                              and isinstance(n.ctx, ast.Store)}
            bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
                      for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a is not None}
    only_solutions -= bound
    for i, tree in trees.items():
        if tree is None:
            continue
        used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                      & only_solutions)
        if used:
            problems.append(f"student cell {i}: uses {', '.join(used)}, which only a solution cell defines")
    return problems


TIMER = re.compile(r"perf_counter|process_time|monotonic|time\.time\(|timeit|\btimed\w*\(")
TIMEY_NAME = re.compile(r"(?:^|_)(?:s|ms|sec|secs|seconds|time|elapsed|wall|duration)$")
TIMEY_WORD = re.compile(r"perf_counter|process_time|monotonic|elapsed|seconds|wall|speed_?up|^time$|_time$|^time_")
TIMEY_KEY = re.compile(r"^(?:s|ms|sec|secs)\b|\b(?:s|ms|sec|secs|seconds|time)$|speed-?up|wall", re.I)


def wall_time_asserts(notebook: dict) -> list[str]:
    """Asserts that compare wall time (a GPU or a slow laptop would fail them): an assert whose condition names a
    timer, seconds or a speed-up, reads a time-like key such as ``"train s"`` or ``"ms (…)"``, or uses a variable set
    from a timer call (``time.perf_counter()``, ``timed_call(…)``)."""
    found = []
    trees = [(i, _tree(c)) for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code"]
    timed: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Assign) and TIMER.search(ast.unparse(node.value)):
                for target in node.targets:
                    names = _targets(target)
                    timed |= names if isinstance(target, ast.Name) else {n for n in names if TIMEY_NAME.search(n)}
    for i, tree in trees:
        for node in ast.walk(tree) if tree else ():
            if not isinstance(node, ast.Assert):
                continue
            parts = list(ast.walk(node.test))
            words = {n.id for n in parts if isinstance(n, ast.Name)} | {n.attr for n in parts if isinstance(n, ast.Attribute)}
            keys = [n.value for n in parts if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if words & timed or any(TIMEY_WORD.search(w) for w in words) or any(TIMEY_KEY.search(k.strip()) for k in keys):
                found.append(f"cell {i}: assert {ast.unparse(node.test)[:120]}")
    return found


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
table.course { width: 100%; table-layout: fixed; }
table.course th:nth-child(1) { width: 34%; } table.course th:nth-child(3) { width: 10%; }
table.course th:nth-child(4) { width: 9%; }
#explorer iframe { width: 100%; height: 575px; border: 1px solid #ddd; }
.explorer-pick button { font: inherit; margin: .2rem .3rem 0 0; padding: .2rem .6rem; border: 1px solid #aaa;
  border-radius: 4px; background: #f6f6f6; cursor: pointer; }
.explorer-pick button[aria-pressed=true] { background: #3b3b8f; color: #fff; border-color: #3b3b8f; }
"""


def _nav(pages: list[tuple[str, str]], index: int) -> str:
    """Every page's navigation bar: home, methods, glossary, API reference, benchmarks; on a notebook's page its two
    editions as .ipynb files and the previous and next notebooks."""
    links = ['<a href="index.html">Course home</a>', '<a href="methods.html">Methods</a>',
             '<a href="glossary.html">Glossary</a>', '<a href="api/index.html">API reference</a>',
             '<a href="benchmarks.html">Benchmarks</a>']
    if index >= 0:
        name = pages[index][0].removesuffix(".html") + ".ipynb"
        links.append(f'<a href="notebooks/{name}" download>notebook (full)</a>')
        links.append(f'<a href="student/{name}" download>student edition</a>')
    if index > 0:
        links.append(f'<a href="{pages[index - 1][0]}">← {html.escape(pages[index - 1][1])}</a>')
    if 0 <= index < len(pages) - 1:
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
    """Links between notebooks and to the methods and glossary pages point at their pages; badge images at the site's
    offline copies; no script or style sheet from a CDN (the course must work offline)."""
    page = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", page)
    page = re.sub(r'<link[^>]*href="https?://[^"]*"[^>]*/?>', "", page)
    page = re.sub(r'href="(?:\.\./notebooks/|notebooks/)?(\d\d_[\w-]+)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', page)
    page = re.sub(r'href="(?:\.\./docs/|docs/)?(methods|glossary)\.md(#[^"]*)?"', r'href="\1.html\2"', page)
    for remote, local in BADGES.items():
        page = page.replace(remote, local)
    return page


def _markdown_page(path: Path) -> dict:
    cell = {"id": path.stem, "cell_type": "markdown", "metadata": {}, "source": path.read_text()}
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _landing_tracks(pages: dict[str, str]) -> str:
    """The course by track for the landing page: each notebook's page, what it teaches, what it needs, both editions."""
    entries = list(COURSE) + [Notebook(stem, "other", "") for stem in pages if stem not in {e.stem for e in COURSE}]
    by_number = {stem[:2]: stem for stem in pages}
    parts = []
    for track in dict.fromkeys(e.track for e in entries):
        about = TRACKS.get(track, "notebooks not yet on the course map")
        rows = []
        for e in (e for e in entries if e.track == track):
            title = html.escape(pages.get(e.stem, e.stem))
            needs = ", ".join(f'<a href="{by_number[n]}.html">{n}</a>' if n in by_number else n for n in e.needs) or "—"
            if e.stem in pages:
                name = html.escape(e.stem)
                cells = (f'<a href="{name}.html">{title}</a>',
                         f'<a href="notebooks/{name}.ipynb" download>full</a> · '
                         f'<a href="student/{name}.ipynb" download>student</a>')
            else:
                cells = (f"{title} <em>(in preparation)</em>", "")
            rows.append(f"<tr><td>{cells[0]}</td><td>{html.escape(e.about)}</td><td>{needs}</td><td>{cells[1]}</td></tr>")
        parts.append(f'<h3 id="track-{track.replace(" ", "-")}">{html.escape(track)}</h3>\n<p>{html.escape(about)}</p>\n'
                     "<table class=\"course\"><tr><th>notebook</th><th>what you learn</th><th>needs</th><th>.ipynb</th></tr>\n"
                     + "\n".join(rows) + "\n</table>")
    return "\n".join(parts)


EXPLORERS = ROOT / "docs" / "explorer"  # precomputed reflow explorers (``python docs/explorer.py``), first one first
EXPLORER_ORDER = ("two_gaussians", "8gaussians_moons")


def explorers() -> list[tuple[str, str]]:
    """The precomputed explorer pages as (file name, title), in the order the landing page offers them."""
    found = sorted(EXPLORERS.glob("*.html"), key=lambda p: (EXPLORER_ORDER + (p.stem,)).index(p.stem))
    titles = [re.search(r"<title>(.*?)</title>", p.read_text(encoding="utf-8"), re.S) for p in found]
    return [(p.name, html.unescape(t.group(1)) if t else p.stem) for p, t in zip(found, titles)]


def _landing_explorer() -> str:
    """The landing page's opening: a selector of the precomputed explorers and the chosen one in a frame."""
    pages = explorers()
    if not pages:
        return ""
    buttons = "".join(f'<button type="button" data-src="explorer/{html.escape(name)}" aria-pressed="{str(i == 0).lower()}">'
                      f"{html.escape(title)}</button>" for i, (name, title) in enumerate(pages))
    return f"""<section id="explorer">
<h2>Watch reflow straighten the paths</h2>
<p>Drag the time slider or press play: particles flow from the source (blue, <em>t</em> = 0) to the target (orange,
<em>t</em> = 1). Switch rounds: 1-RF is trained on independent pairs and bends; each reflow round (2-RF, 3-RF) is trained
on the pairs of the round before, and its paths are straighter than 1-RF's, so one Euler step lands closer to the target
(<code>tests/test_explorer.py</code> checks both on these numbers). The numbers beside the picture were measured when
these explorers were built (<a href="03_rectified_flow.html">notebook 03</a> explains
them). Data pair: <span class="explorer-pick">{buttons}</span></p>
<iframe id="explorer-frame" src="explorer/{html.escape(pages[0][0])}" title="reflow explorer"></iframe>
<p><a id="explorer-link" href="explorer/{html.escape(pages[0][0])}">open this explorer on its own page</a></p>
<script>
(function () {{
  const frame = document.getElementById('explorer-frame'), link = document.getElementById('explorer-link');
  const buttons = document.querySelectorAll('.explorer-pick button');
  buttons.forEach(b => b.addEventListener('click', () => {{
    frame.src = link.href = b.dataset.src;
    buttons.forEach(o => o.setAttribute('aria-pressed', String(o === b)));
  }}));
}})();
</script>
</section>"""


def build_site(out: Path) -> list[Path]:
    """Write the website to ``out``: a landing page with the course by track, one page per notebook, the methods and
    glossary pages (math as MathML), both editions of every notebook as files (``notebooks/``, ``student/``), the
    benchmarks page (``docs/benchmarks_page.py``) and the API reference in ``api/`` (``docs/api.py``, pdoc)."""
    from api import build_api
    from benchmarks_page import build_benchmarks

    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "docs" / "badges", out / "badges", dirs_exist_ok=True)
    shutil.copy(ROOT / "docs" / "demo.png", out / "demo.png")
    (out / "explorer").mkdir(exist_ok=True)
    for name, _ in explorers():
        shutil.copy(EXPLORERS / name, out / "explorer" / name)
    (out / "notebooks").mkdir(exist_ok=True)
    for path in paths():
        shutil.copy(path, out / "notebooks" / path.name)
    write_student(out / "student")
    exporter = _exporter()
    notebooks = [(p.stem + ".html", _title(load(p), p.stem), p) for p in paths()]
    documents = [("methods.html", "Methods", _markdown_page(ROOT / "docs" / "methods.md")),
                 ("glossary.html", "Glossary", _markdown_page(ROOT / "docs" / "glossary.md"))]
    pages = documents + [(page, title, load(path)) for page, title, path in notebooks]
    order = [(page, title) for page, title, _ in notebooks]
    written = []
    for page, title, notebook in pages:
        body, _ = exporter.from_notebook_node(_as_node(notebook))
        body = _localise(body)  # before the navigation bar, whose .ipynb links must stay files
        nav = _nav(order, next((i for i, (p, _) in enumerate(order) if p == page), -1))
        body = re.sub(r"(<body[^>]*>)", lambda m, nav=nav: m.group(1) + nav, body, count=1)
        head = f'<link rel="icon" href="data:,"><style>{NAV_STYLE}</style><title>{html.escape(title)} · toyflow</title>'
        body = re.sub(r"<title>.*?</title>", head, body, count=1, flags=re.S)
        (out / page).write_text(render_math(body))
        written.append(out / page)
    tracks = _landing_tracks({path.stem: title for _, title, path in notebooks})
    index = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>toyflow · the course</title>
<style>{PAGE_STYLE}</style></head>
<body>
{_nav(order, -1)}
<h1>toyflow: flow-based generative modelling you can read and run</h1>
<p>Flow matching, rectified flow and reflow, diffusion as a flow, one-step distillation, MeanFlow, normalizing flows,
better sampling, guidance and reward fine-tuning on 2D data, each method in one readable PyTorch module and taught in a
notebook that the tests execute top to bottom.</p>
{_landing_explorer()}
<h2>The course</h2>
<p>Five tracks: <strong>core</strong> is the spine, the others branch off it; <em>needs</em> lists exactly the
notebooks each one builds on. Every notebook comes in two editions: the <strong>full</strong> one, with its outputs
and the solutions in collapsed cells, and the <strong>student</strong> one, with the solutions removed: each exercise's
checker says "not written yet" until you write the function, then what is wrong or that it is right. Both open in
Jupyter, and in Colab (File → Upload notebook).</p>
{tracks}
<h2>Reference</h2>
<p><a href="methods.html">Methods</a>: the math of every method in toyflow's time convention.
<a href="glossary.html">Glossary</a>: short definitions of the terms the course uses, each with the notebook that
teaches it. <a href="api/index.html">API reference</a>: every public module of toyflow, from its docstrings.
<a href="benchmarks.html">Benchmarks</a>: speed and quality against torchcfm and zuko, with the command behind each
number.</p>
<p>Source: <a href="{repository()}">{repository()}</a></p>
</body></html>
"""
    (out / "index.html").write_text(index)
    benchmarks = build_benchmarks(out, _nav(order, -1), PAGE_STYLE)
    return [out / "index.html"] + written + [benchmarks] + build_api(out / "api", repository())


def _as_node(notebook: dict):
    import nbformat

    return nbformat.reads(json.dumps(notebook), as_version=4)  # joins each cell's source lines


def course_problems() -> list[str]:
    """Every rule of the course a notebook breaks: the course map, the solution cells, the student edition, wall time."""
    problems = map_problems()
    for path in paths():
        notebook = cleaned(synced(load(path), path.name))
        found = solution_problems(notebook) + student_problems(notebook)
        found += [f"asserts on wall time, {where}" for where in wall_time_asserts(notebook)]
        problems += [f"{path.name}: {problem}" for problem in found]
    return problems


def _checker_messages(notebook) -> list[str]:
    """What the exercise checkers printed in an executed notebook, one line per checker call."""
    messages = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "exercises.check_" in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    messages += [line for line in output["text"].splitlines() if line.strip()]
    return messages


def execute_student(written: list[Path], jobs: int = 1) -> int:
    """Run every student notebook top to bottom (nbclient, a fresh kernel each) and print, per notebook, whether it ran
    to the end and what each exercise checker said. Returns the number of notebooks that stopped."""
    from concurrent.futures import ThreadPoolExecutor

    import nbclient
    import nbformat

    def run(path: Path):
        notebook = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            status = "ran to the end"
        except nbclient.exceptions.CellExecutionError as error:
            status = f"STOPPED: {str(error).strip().splitlines()[-1][:200]}"
        return path, status, time.perf_counter() - started, _checker_messages(notebook)

    stopped = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, status, seconds, messages in pool.map(run, written):
            stopped += not status.startswith("ran")
            print(f"{path.name}: {status} ({seconds:.0f} s), {len(messages)} checker message(s)")
            for message in messages:
                print(f"    {message}")
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["sync", "site", "check", "student"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="sync or write only these notebooks (default: all)")
    parser.add_argument("--out", type=Path, help="where `site` (out/site) or `student` (out/student) writes")
    parser.add_argument("--execute", action="store_true", help="`student`: run every student notebook, print the checkers")
    parser.add_argument("--jobs", type=int, default=1, help="`student --execute`: notebooks run at once (%(default)s)")
    args = parser.parse_args(argv)
    only = [path.resolve() for path in args.notebooks]
    if args.command == "site":
        out = args.out or ROOT / "out" / "site"
        pages = build_site(out)
        api = sum(page.is_relative_to(out / "api") for page in pages)
        print(f"wrote {len(pages)} pages to {out}: {len(pages) - api} course pages (benchmarks included), {api} API pages")
    elif args.command == "student":
        out = args.out or ROOT / "out" / "student"
        written = write_student(out, only)
        removed = sum(solution_blocks(cleaned(synced(load(path), path.name))) for path in only or paths())
        print(f"wrote the student edition of {len(written)} notebooks to {out}: {removed} solutions removed")
        if args.execute:
            return 1 if execute_student(written, args.jobs) else 0
    elif args.command == "check":
        changed = sync(write=False)
        print("in line" if not changed else "out of line, run `python docs/course.py sync`: " + ", ".join(changed))
        problems = course_problems()
        print("\n".join(problems) if problems else "no rule broken")
        return 1 if changed or problems else 0
    else:
        changed = sync(only=only)
        print("changed: " + ", ".join(changed) if changed else "nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
