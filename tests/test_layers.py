"""Layers point one way (issue 13): the package's imports, read with `ast`, form no cycle between
top-level modules and never reach up a layer; and no module reads another object's private attributes."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vaemsgan"

# Lowest to highest. A module may import from its own top-level unit and from lower layers only:
# not from a higher layer, and not from another unit of its own layer (peers stay independent).
LAYERS: list[set[str]] = [
    {"errors", "version"},
    {"limits", "utils"},
    {"config_values"},  # one value against its field: what config.py checks every key with
    {"config"},
    {"presets", "data", "models", "losses", "metrics", "checkpoint"},
    {"inference"},
    {"training", "generation"},
    {"evaluation"},  # evaluating a generator samples from it (generation); the training monitor lives here
    {"experiments"},
    {"api"},
    {"cli"},
    {"__init__", "__main__"},
]
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}

# Rules stated on their own, so that a change of LAYERS cannot drop them silently.
FORBIDDEN = [("training", "evaluation"), ("training", "experiments"), ("inference", "training")]

# Private attributes of other objects that may be read: third-party internals with no public equivalent.
PRIVATE_ALLOWED = {
    "torch._foreach_norm",  # one fused max-abs over all gradients (the NaN guard's single host sync)
    "nn.modules.batchnorm._BatchNorm",  # the common base of BatchNorm1d/2d/3d and SyncBatchNorm
    "argparse._SubParsersAction",  # argparse has no public way to walk the subcommands of a parser
    "parser._actions",  # ... nor their options (cli/options.py checks every option's help text)
    "sub._actions",
}


def _unit(path: Path) -> str:
    """The top-level unit of a source file: a subpackage name, or a module name without .py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _is_unit(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _imported_units(path: Path) -> set[tuple[str, int]]:
    """(unit, line) for every import of vaemsgan in the file, function-level imports included."""
    out: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            if node.module == "vaemsgan":
                names = [f"vaemsgan.{a.name}" for a in node.names]
            elif node.module:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "vaemsgan" and len(parts) > 1 and _is_unit(parts[1]):
                out.add((parts[1], node.lineno))
            elif parts[0] == "vaemsgan":  # `from vaemsgan import __version__`: the package itself
                out.add(("__init__", node.lineno))
    return out


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _graph() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> ["file:line", ...] (imports within a unit left out)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in _sources():
        here = _unit(path)
        for there, line in _imported_units(path):
            if there != here:
                graph[here][there].append(f"{path.relative_to(PACKAGE)}:{line}")
    return graph


def test_every_unit_has_a_layer() -> None:
    units = {_unit(p) for p in _sources()}
    assert units <= set(LAYER_OF), f"units without a layer in LAYERS: {sorted(units - set(LAYER_OF))}"


def test_imports_point_down() -> None:
    bad = [
        f"{where}: {here} (layer {LAYER_OF[here]}) imports {there} (layer {LAYER_OF[there]})"
        for here, deps in _graph().items()
        for there, wheres in deps.items()
        if LAYER_OF[there] >= LAYER_OF[here]
        for where in wheres
    ]
    assert not bad, "imports that do not point to a lower layer:\n" + "\n".join(sorted(bad))


def test_required_rules() -> None:
    graph = _graph()
    bad = [
        f"{here} imports {there}: {graph[here][there]}" for here, there in FORBIDDEN if graph[here].get(there)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = {here: set(deps) for here, deps in _graph().items()}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_private_attribute_of_another_object() -> None:
    """`x._name` only on self/cls: another module's internals are reached through a public name."""
    bad = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner in ("self", "cls") or ast.unparse(node) in PRIVATE_ALLOWED:
                continue
            bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "private attributes read from outside their object:\n" + "\n".join(bad)
