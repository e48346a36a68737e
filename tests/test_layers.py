"""The package's layers: imports point down (or sideways), never up, and module-level imports form no cycle.

The layers are those of docs/architecture.md. A new module must be given a layer here, so the picture stays true.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "graphdiff"

#: top-level module or subpackage of graphdiff -> layer (0 = base). Same-layer imports are allowed.
LAYERS: dict[str, int] = {
    # 0 core types and file helpers
    "__init__": 0, "errors": 0, "log": 0, "types": 0, "storage": 0, "info": 0, "io": 0, "outputs": 0, "configs": 0,
    "runtime": 0, "conditioning": 0, "compile": 0,
    # 1 conversions and the generation contract
    "graph": 1, "chem": 1, "generation": 1, "descriptors": 1,
    # 2 the math of each family, networks, metrics, and data
    "diffusion": 2, "sde": 2, "flow": 2, "models": 2, "metrics": 2, "datasets": 2,
    # 3 what combines them: evaluation, pictures, files of samples, the Lightning layer
    "evaluation": 3, "pictures": 3, "sample_files": 3, "callbacks": 3, "lit": 3, "checkpoints": 3,
    # 4 the interfaces
    "api": 4, "pipeline": 4, "lightning_cli": 4, "quickstart": 4, "sampler_search": 4, "cli": 4,
}
#: subpackages whose modules may not import one another's siblings at a higher level (the families are peers).
PEERS = ("diffusion", "sde", "flow", "models", "metrics", "datasets")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("graphdiff"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("graphdiff"))
    return found


def _layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: give graphdiff.{top} a layer in tests/test_layers.py and docs/architecture.md"
    return top, LAYERS[top]


def test_every_module_has_a_layer():
    for module in _modules():
        _layer_of(module)


def test_no_module_imports_a_higher_layer():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        top, layer = _layer_of(module)
        for target in _imports(path, top_level_only=False):
            if target not in modules:  # ``from graphdiff.x import name``: the name, not a module
                continue
            other_top, other_layer = _layer_of(target)
            if other_layer > layer:
                upward.append(f"{module} (layer {layer}) imports {target} (layer {other_layer})")
            elif other_layer == layer and top in PEERS and other_top in PEERS and top != other_top:
                upward.append(f"{module} imports its peer {target}")
    assert not upward, "\n".join(upward)


def test_module_level_imports_have_no_cycle():
    modules = _modules()
    graph = defaultdict(set)
    for module, path in modules.items():
        for target in _imports(path, top_level_only=True):
            if target in modules and target != module:
                graph[module].add(target)
    # a package's __init__ importing its own submodules is how a public surface is built, not a cycle
    for module in list(graph):
        graph[module] = {t for t in graph[module] if not (t.startswith(module + ".") and module in modules)}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [node]):
                return True
        state[node] = 2
        return False

    for module in sorted(modules):
        if state.get(module) is None and visit(module, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The checker itself: a base-layer module importing the CLI is reported."""
    fake = tmp_path / "types.py"
    fake.write_text("from graphdiff.cli import main\n")
    assert "graphdiff.cli" in _imports(fake, top_level_only=True)
    assert _layer_of("graphdiff.cli")[1] > _layer_of("graphdiff.types")[1]
