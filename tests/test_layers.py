"""The library's imports point one way: each module imports only modules of a lower layer (or its own package)."""

import ast
import pathlib

import pytest

import toyflow

PACKAGE = pathlib.Path(toyflow.__file__).parent

# layer of each module: a module may import only modules of a strictly lower layer
LAYERS = {
    "_base": 0,  # random draws, time broadcast, argument checks, the MLP builder; torch only
    "data": 1, "paths": 1, "models": 1,  # what is transported, along which path, by which network
    "closed_form": 2, "solvers": 2, "transport": 2,  # exact answers, ODE steps, OT plans
    "pairs": 3, "metrics": 3, "train": 3,
    "couplings": 4,
    "batch": 5,  # the objective contract
    "schedules": 6, "flow_matching": 6, "sde": 6, "meanflow": 6, "nf": 6, "blockwise": 6, "latent": 6,
    "flowmap": 7, "rectify": 7, "search": 7, "refine": 7, "guidance": 7, "policy": 7, "restore": 7,
    "finetune": 8,
    "plot": 9, "explorer": 10, "exercises": 11, "cli": 12, "__main__": 13,
}
SAME_LAYER = {("plot", "explorer")}  # plot.explorer forwards (lazily) to the explorer, which reads plot's colours


def _modules() -> dict[str, pathlib.Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            files[".".join(parts)] = path
    return files


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Top-level toyflow modules that ``name`` imports (relative or absolute)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                targets = [target] if node.module else [base + [alias.name] for alias in node.names]
            elif node.module and node.module.startswith("toyflow."):
                targets = [node.module.split(".")[1:]]
            else:
                targets = []
            found.update(t[0] for t in targets if t)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("toyflow."))
    return found - {name.split(".")[0]}


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_point_down(name):
    top = name.split(".")[0]
    assert top in LAYERS, f"toyflow.{name} has no layer: add {top!r} to LAYERS in tests/test_layers.py"
    upward = sorted(m for m in _imports(name, _modules()[name])
                    if LAYERS.get(m, 99) >= LAYERS[top] and (top, m) not in SAME_LAYER)
    assert not upward, f"toyflow.{name} (layer {LAYERS[top]}) imports {upward} of the same or a higher layer"


def test_the_bottom_layer_imports_only_torch():
    tree = ast.parse((PACKAGE / "_base.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"torch", "math", "numbers", "collections", "__future__"}, imported
