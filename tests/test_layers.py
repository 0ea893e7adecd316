"""The package is layered: every import (also inside functions) points to the same or a lower layer,
and no modules import each other in a circle. A new back-edge or cycle fails here, by name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dataexplore"

#: Lowest first. A module may import modules of its own layer or of a layer above it in this list.
LAYERS = [
    ("core", ["_version", "core"]),
    ("sources", ["sources"]),
    ("models", ["models"]),
    ("embedding", ["embedding"]),
    ("projection", ["projection"]),
    ("language", ["language"]),
    ("query", ["query"]),
    ("analysis", ["analysis"]),
    ("labeling", ["labeling"]),
    ("widget", ["widget"]),
    ("integrations", ["integrations"]),
    ("app", ["app"]),
    ("cli", ["cli", "cli_quality", "cli_demo", "__main__"]),
    ("facade", [""]),  # dataexplore/__init__.py: the public names, resolved lazily
]

#: The only imports that point up, each for a reason a reader can check.
ALLOWED_UPWARD = {
    # Selection.to_query(): the one-call way from a selection to a query artefact; imported on call.
    ("core.selection", "query"),
    # The script that trains the built-in model also calibrates its concept thresholds.
    ("models.train_fashion_tiny", "language.calibration"),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if name else []
        package = here if is_pkg else here[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "dataexplore"]
                targets = [t.partition(".")[2] for t in targets]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == "dataexplore":
                    module = node.module.partition(".")[2]
                else:
                    continue
                targets = [f"{module}.{a.name}".strip(".") for a in node.names] + [module]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target in mods and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def layer_of(module: str) -> int:
    head = module.split(".")[0]
    for i, (_, members) in enumerate(LAYERS):
        if head in members:
            return i
    raise AssertionError(f"dataexplore.{module} belongs to no layer: add its folder to LAYERS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_a_layer():
    for module in modules():
        layer_of(module)


def test_no_import_points_to_a_higher_layer():
    graph = import_graph()
    upward = sorted((m, t) for m, targets in graph.items() for t in targets
                    if layer_of(t) > layer_of(m) and (m, t) not in ALLOWED_UPWARD)
    assert not upward, "imports into a higher layer:\n" + "\n".join(
        f"  dataexplore.{m} ({LAYERS[layer_of(m)][0]}) -> dataexplore.{t} ({LAYERS[layer_of(t)][0]})"
        for m, t in upward)


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ re-exporting its own modules is not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".") or m == ""}
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in found)


def test_the_allowed_exceptions_still_exist():
    graph = import_graph()
    stale = [pair for pair in ALLOWED_UPWARD if pair[1] not in graph.get(pair[0], set())]
    assert not stale, f"remove these from ALLOWED_UPWARD, the imports are gone: {stale}"


@pytest.mark.parametrize("edge, message", [
    ({"core.ids": {"widget.explorer"}}, "higher layer"),
    ({"analysis.gaps": {"analysis.slices"}, "analysis.slices": {"analysis.gaps"}}, "cycle"),
])
def test_the_rules_catch_what_they_are_for(edge, message):
    graph = {m: set(t) for m, t in import_graph().items()}
    for m, targets in edge.items():
        graph[m] |= targets
    if message == "higher layer":
        assert any(layer_of(t) > layer_of(m) and (m, t) not in ALLOWED_UPWARD for m, ts in graph.items() for t in ts)
    else:
        assert ["analysis.gaps", "analysis.slices"] in [sorted(c) for c in cycles(graph) if len(c) == 2] or \
            any({"analysis.gaps", "analysis.slices"} <= set(c) for c in cycles(graph))
