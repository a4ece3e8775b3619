"""The package dependency rules of docs/architecture.md, checked by reading every module's imports.

Why a test: the rules (dependencies point down, tooling apart from the runtime, no cycles between packages)
erode one convenient import at a time, and each break is invisible in review. Every ``import`` and
``from ... import`` anywhere in a module counts, including those inside functions and under
``TYPE_CHECKING``: a lazy or type-only import is still a dependency of the importing package.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

LFR = Path(__file__).resolve().parents[2] / "services" / "lfr"

# Packages that serve the pipeline and its stores; the HTTP layer (lfr.api) sits above them.
DOMAIN = ("watchlist", "alerting", "retro", "ingest", "embedder", "vision", "redact", "demo", "core")
# Tooling: measurement (evaluation, the benchmarks package) and model building, run by people and by
# ``lfr models build``, never by a service handling frames. Production code must not depend on evaluation;
# the root CLI, which wires the evaluation commands, is tooling for this rule.
TOOLING_PACKAGES = ("evaluation", "bench", "modelbuild")
EVAL_CLI_WIRING = ("lfr.cli",)
# Generated wire types (protoc output): the bottom layer, importable by every package including core.
GENERATED = ("v1",)
# Model building and conversion: the lfr.modelbuild package, and the module names it took out of vision
# (so a module moved back into vision is caught too).
MODEL_BUILDING_PACKAGE = "modelbuild"
MODEL_TOOLING_BASENAMES = (
    "build",
    "quantize",
    "calibrate",
    "calibrate_landmarks",
    "onnx_graph",
    "onnx_repair",
)
MODEL_TOOLING_PREFIXES = ("convert_",)
# Plug-in settings leaves: a plug-in's settings live beside it (``vision/detectors/<name>_settings.py``) and
# lfr.core.config composes them into the one settings tree. That is the one edge allowed to point up from
# core, and only because a leaf imports nothing of lfr (checked below) and the packages it sits in load no
# lfr module on import: the edge cannot close a cycle at run time, so it is left out of the cycle check.
SETTINGS_LEAF_SUFFIX = "_settings"


def _module_name(path: Path) -> str:
    rel = path.relative_to(LFR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the lfr package by dotted name (generated protobuf modules left out)."""
    found = {}
    for path in sorted(LFR.rglob("*.py")):
        name = _module_name(path)
        if name.split(".")[1:2] == ["v1"]:
            continue
        found[name] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names imported by ``from X import a, b`` (a relative X resolved against ``module``)."""
    if node.level:
        base = module.split(".")
        # For a package's __init__ the package itself is level 1; for a module, its parent package is.
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # ``from lfr import api`` imports the package lfr.api; ``from lfr.api import app`` imports lfr.api[.app].
    return [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]


@cache
def imports_of(module: str) -> tuple[tuple[str, int], ...]:
    """Every lfr name ``module`` imports, with the line of the import statement."""
    path = modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [(name, node.lineno) for name in _resolve(module, path.name == "__init__.py", node)]
    return tuple((name, line) for name, line in out if name == "lfr" or name.startswith("lfr."))


def _top(name: str) -> str | None:
    """The top-level lfr package (or top-level module such as ``cli``) a dotted name belongs to."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def _in(name: str, packages: Iterable[str]) -> bool:
    return _top(name) in set(packages)


def _where(module: str, line: int, target: str) -> str:
    return f"{modules()[module].relative_to(LFR.parents[1])}:{line} imports {target}"


def _violations(sources: Iterable[str], forbidden: Callable[[str], bool]) -> list[str]:
    """One line per offending import statement (``from X import a, b`` yields X, X.a and X.b: X is shown)."""
    first: dict[tuple[str, int], str] = {}
    for m in sources:
        for name, line in imports_of(m):
            if forbidden(name) and len(name) < len(first.get((m, line), name + "_")):
                first[(m, line)] = name
    return [_where(m, line, name) for (m, line), name in sorted(first.items())]


def test_every_module_is_found() -> None:
    """A guard on the walker itself: the rules below would pass vacuously over an empty tree."""
    names = modules()
    assert "lfr.core.config" in names and "lfr.api.app" in names and len(names) > 100
    assert any(name.startswith("lfr.core.") for name, _ in imports_of("lfr.api.app"))


def test_relative_imports_resolve_to_absolute_names() -> None:
    node = ast.parse("from ..core import config").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert "lfr.core.config" in _resolve("lfr.api.app", False, node)
    node = ast.parse("from .store import X").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert "lfr.watchlist.store" in _resolve("lfr.watchlist", True, node)


def test_domain_packages_never_import_the_api() -> None:
    domain = [m for m in modules() if _in(m, DOMAIN)]
    bad = _violations(domain, lambda name: _in(name, ["api"]))
    assert not bad, "domain code depends on the HTTP layer:\n" + "\n".join(bad)


def test_production_code_never_imports_evaluation() -> None:
    production = [
        m for m in modules() if not _in(m, TOOLING_PACKAGES) and m not in EVAL_CLI_WIRING and m != "lfr"
    ]
    bad = _violations(production, lambda name: _in(name, ["evaluation"]))
    assert not bad, "production code depends on evaluation tooling:\n" + "\n".join(bad)


def is_settings_leaf(name: str) -> bool:
    """A plug-in settings module (``lfr.<package>...<name>_settings``) outside core, or a name in one."""
    parts = name.split(".")
    for end in range(3, len(parts) + 1):
        if parts[1] != "core" and parts[end - 1].endswith(SETTINGS_LEAF_SUFFIX):
            return ".".join(parts[:end]) in modules()
    return False


def _parent_packages(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def test_settings_leaves_import_nothing_of_lfr() -> None:
    """What makes the core -> leaf edge safe: the leaf, and every package __init__ Python runs to reach it,
    import no lfr module at load time that could lead back to core."""
    leaves = [m for m in modules() if is_settings_leaf(m)]
    assert leaves, "no plug-in settings leaves found: update SETTINGS_LEAF_SUFFIX"
    bad = _violations(leaves, lambda name: name != "lfr" and not _in(name, list(GENERATED)))
    assert not bad, "plug-in settings must need nothing but pydantic:\n" + "\n".join(bad)
    bad = []
    for leaf in leaves:
        for module, line, name in _loaded_with(_parent_packages(leaf)):
            if _in(name, ["core"]):
                bad.append(f"loading {leaf}: {modules()[module]}:{line} imports {name}")
    assert not bad, "loading a settings leaf's packages would import core:\n" + "\n".join(bad)


def _module_of(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of lfr (``a.b.Class`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in modules():
            return ".".join(parts[:end])
    return None


def _loaded_with(start: list[str]) -> list[tuple[str, int, str]]:
    """(module, line, imported name) for every lfr import Python runs when loading ``start``, transitively."""
    seen: set[str] = set()
    todo = list(start)
    out = []
    while todo:
        module = todo.pop()
        if module in seen or module not in modules():
            continue
        seen.add(module)
        todo += _parent_packages(module)
        for name, line in runtime_imports_of(module):
            out.append((module, line, name))
            target = _module_of(name)
            if target:
                todo.append(target)
    return out


def runtime_imports_of(module: str) -> list[tuple[str, int]]:
    """The lfr names ``module`` imports at load time: top-level statements outside ``TYPE_CHECKING``."""
    path = modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lfr"]
        elif isinstance(node, ast.ImportFrom):
            out += [(n, node.lineno) for n in _resolve(module, is_package, node) if n.split(".")[0] == "lfr"]
    return out


def test_core_imports_no_other_lfr_package() -> None:
    core = [m for m in modules() if _in(m, ["core"])]
    bad = _violations(
        core,
        lambda name: (
            name != "lfr"
            and not _in(name, ["core", *GENERATED])
            and not is_settings_leaf(name)
            and not any(
                name == p for leaf in modules() if is_settings_leaf(leaf) for p in _parent_packages(leaf)
            )
        ),
    )
    assert not bad, "lfr.core must sit at the bottom (plug-in settings leaves aside):\n" + "\n".join(bad)


def test_subscriber_kit_stands_alone() -> None:
    """``pip install 'lfr[client]'`` brings aiokafka and protobuf only: lfr.client may use the wire types and
    nothing else of lfr (lfr.core alone would pull in pydantic settings, Redis and the rest)."""
    client = [m for m in modules() if _in(m, ["client"])]
    bad = _violations(client, lambda name: name != "lfr" and not _in(name, ["client", *GENERATED]))
    assert not bad, "the subscriber kit depends on the server:\n" + "\n".join(bad)


def _is_model_tooling(name: str) -> bool:
    parts = name.split(".")
    if len(parts) > 1 and parts[1] == MODEL_BUILDING_PACKAGE:
        return True
    if len(parts) < 3 or parts[1] != "vision":
        return False
    base = parts[2]
    return base in MODEL_TOOLING_BASENAMES or base.startswith(MODEL_TOOLING_PREFIXES)


def test_vision_runtime_does_not_import_model_building() -> None:
    runtime = [m for m in modules() if _in(m, ["vision"]) and not _is_model_tooling(m)]
    bad = _violations(runtime, _is_model_tooling)
    assert not bad, "the vision runtime loads model-building code:\n" + "\n".join(bad)


def package_graph() -> dict[str, set[str]]:
    """Top-level package -> the top-level packages its modules import (self-edges and generated code out)."""
    graph: dict[str, set[str]] = {}
    for m in modules():
        src = _top(m)
        if src is None:
            continue
        for name, _ in imports_of(m):
            if is_settings_leaf(name):
                continue  # cannot close a cycle: see SETTINGS_LEAF_SUFFIX
            dst = _top(name)
            exists = (LFR / dst).is_dir() or (LFR / f"{dst}.py").is_file() if dst else False
            if dst and dst != src and dst not in GENERATED and exists:
                graph.setdefault(src, set()).add(dst)
            graph.setdefault(src, set())
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def _edge_sites(src: str, dst: str) -> list[str]:
    return _violations([m for m in modules() if _top(m) == src], lambda name: _top(name) == dst)


def test_no_import_cycles_between_packages() -> None:
    graph = package_graph()
    cycles = find_cycles(graph)
    report = []
    for comp in cycles:
        report.append("cycle between " + ", ".join(comp) + ":")
        for src in comp:
            for dst in sorted(graph[src] & set(comp)):
                sites = _edge_sites(src, dst)
                report.append(f"  {src} -> {dst} ({len(sites)} imports), e.g. " + "; ".join(sites[:2]))
    assert not cycles, "\n".join(report)
