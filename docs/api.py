"""The API reference of the course website: one page per public module of toyflow, generated from the docstrings by
pdoc (https://pdoc.dev) into ``<site>/api/``.

Documented: ``toyflow``, every submodule whose name has no part starting with ``_`` (``toyflow.nf`` and its modules
included), and the bottom layer ``toyflow._base``, which every other module builds on: a learner meets its checks and
its rule for random draws in every traceback, so it gets a page like the others, under its own name. Docstrings are
read as Google style (``Args:``) with reST roles (``:func:`x```); their math is plain Unicode, which needs no renderer.
Each page's sidebar opens with the course's links (home, methods, glossary, benchmarks, the module index).

    python docs/course.py site   # builds the course pages, this reference and the benchmarks page
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import tempfile
from pathlib import Path

PACKAGE = "toyflow"
BOTTOM_LAYER = "toyflow._base"

# The sidebar's first lines on every API page: the course's own links, relative to the page (``api/a/b.html`` is two
# folders below the site's root).
MODULE_TEMPLATE = """{% extends "default/module.html.jinja2" %}
{% block nav_title %}
{% set root = "../" * (module.modulename.count(".") + 1) %}
<nav class="course"><a href="{{ root }}index.html">Course home</a><a href="{{ root }}methods.html">Methods</a>
<a href="{{ root }}glossary.html">Glossary</a><a href="{{ root }}benchmarks.html">Benchmarks</a>
<a href="{{ root }}api/index.html">API reference</a></nav>
{% endblock %}
"""
INDEX_TEMPLATE = """{% set root_module_name = false %}{% extends "default/index.html.jinja2" %}
{% block nav %}
<nav class="course"><a href="../index.html">Course home</a><a href="../methods.html">Methods</a>
<a href="../glossary.html">Glossary</a><a href="../benchmarks.html">Benchmarks</a></nav>
{{ super() }}
{% endblock %}
{% block content %}
<main class="pdoc"><h1>toyflow API reference</h1>
<p>One page per module, generated from the docstrings: each formula in toyflow's time convention (source at t = 0, target
at t = 1), the tensor shapes and the paper it comes from. <code>toyflow._base</code> is the bottom layer every other
module builds on.</p>
<table class="modules">{% for name, module in all_modules.items() %}
<tr><td><a href="{{ name.replace(".", "/") }}.html">{{ name }}</a></td>
<td>{{ summaries[name] | safe }}</td></tr>{% endfor %}
</table></main>
{% endblock %}
"""
CUSTOM_CSS = """
nav.course { position: static; height: auto; width: auto; overflow: visible; margin-bottom: 1rem; padding-bottom: .6rem;
  border-bottom: 1px solid #ddd; font-family: system-ui, sans-serif; }
table.modules td { padding: .3rem .8rem; vertical-align: top; } table.modules p { margin: 0; }
table.modules td:first-child { white-space: nowrap; }
nav.course a { display: inline-block; margin-right: .9rem; color: #3b3b8f; }  /* pdoc fixes every nav */
"""


def public_modules() -> list[str]:
    """The documented modules: the package, its public submodules (walked recursively) and the bottom layer."""
    package = importlib.import_module(PACKAGE)
    found = [info.name for info in pkgutil.walk_packages(package.__path__, PACKAGE + ".")
             if not any(part.startswith("_") for part in info.name.split(".")[1:])]
    return [PACKAGE, BOTTOM_LAYER, *sorted(found)]


def _definitions(module: str) -> tuple[ast.Module, list[str] | None]:
    """A module's syntax tree and its ``__all__`` (None when it has none)."""
    source = importlib.util.find_spec(module).origin
    tree = ast.parse(Path(source).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return tree, list(ast.literal_eval(node.value))
    return tree, None


def _defined(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [target.id for target in targets if isinstance(target, ast.Name)]


def public_names(module: str) -> list[str]:
    """The names a module's page must show: its ``__all__``, else the names it defines at its top level (functions,
    classes, assignments) that do not start with ``_``."""
    tree, exported = _definitions(module)
    if exported is not None:
        return exported
    return list(dict.fromkeys(name for node in tree.body for name in _defined(node) if not name.startswith("_")))


def missing_docstrings(module: str) -> list[str]:
    """The public functions, classes and methods (no ``_`` in front) a module defines without a docstring, as
    ``module.name`` or ``module.Class.method``. Methods count when their class is public."""
    tree, exported = _definitions(module)
    public = set(exported) if exported is not None else None
    missing = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        if public is not None and node.name not in public:
            continue
        if ast.get_docstring(node) is None:
            missing.append(f"{module}.{node.name}")
        if isinstance(node, ast.ClassDef):
            missing += [f"{module}.{node.name}.{method.name}" for method in node.body
                        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and not method.name.startswith("_")
                        and ast.get_docstring(method) is None]
    return missing


def page_of(module: str) -> str:
    """Where pdoc writes a module's page, relative to the API folder: ``toyflow.nf.base`` -> ``toyflow/nf/base.html``."""
    return module.replace(".", "/") + ".html"


def build_api(out: Path, repository: str | None = None) -> list[Path]:
    """Write the API reference into ``out`` (the site's ``api/`` folder): a page per module of :func:`public_modules`,
    a module index and pdoc's search index. With ``repository`` (a GitHub URL) each page links to its source there.
    Returns the module pages."""
    import pdoc.doc
    import pdoc.render
    from pdoc.render_helpers import to_html, to_markdown

    names = public_modules()
    with tempfile.TemporaryDirectory() as templates:
        for name, text in (("module.html.jinja2", MODULE_TEMPLATE), ("index.html.jinja2", INDEX_TEMPLATE),
                           ("custom.css", CUSTOM_CSS)):
            (Path(templates) / name).write_text(text)
        pdoc.render.configure(docformat="google", favicon="data:,", template_directory=Path(templates),
                              edit_url_map={PACKAGE: f"{repository}/blob/main/{PACKAGE}/"} if repository else None)
        modules = {name: pdoc.doc.Module.from_name(name) for name in names}
        pdoc.render.env.globals["summaries"] = {  # the index's line per module: its docstring's first paragraph
            name: to_html(to_markdown(module.docstring.split("\n\n")[0], module, "google")) for name, module in modules.items()}
        written = []
        for name, module in modules.items():
            path = out / page_of(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pdoc.render.html_module(module, modules), encoding="utf-8")
            written.append(path)
        (out / "index.html").write_text(pdoc.render.html_index(modules), encoding="utf-8")
        (out / "search.js").write_text(pdoc.render.search_index(modules), encoding="utf-8")
    return written
