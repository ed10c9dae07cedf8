"""Imports run downhill only: envelopes <- signing <- routing <- axis, with ``cli.py`` on top.

A package may import its own and lower floors, never a higher one; nothing imports ``cli``;
no import cycle joins any files of the four packages and ``cli.py``. So each floor stays usable
and testable without the floors built on it, and import order never matters. The sources are
read with ``ast``, never imported, so function-local and ``TYPE_CHECKING`` imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envelopes", "signing", "routing", "axis")
FLOORS = {**{package: floor for floor, package in enumerate(PACKAGES)}, "cli": len(PACKAGES)}
Graph = dict[Path, set[Path]]


def source_files(root: Path) -> list[Path]:
    files = sorted(path for package in PACKAGES for path in (root / package).rglob("*.py"))
    return [*files, root / "cli.py"] if (root / "cli.py").is_file() else files


def module_file(root: Path, module: str) -> Path | None:
    """The in-tree file defining ``module`` (``a/b.py`` or ``a/b/__init__.py``), if any."""
    if module.split(".")[0] not in FLOORS:
        return None
    base = root.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def collect_imports(root: Path, path: Path) -> list[tuple[int, str]]:
    """Every import in ``path``, at any depth, as ``(line, absolute module)``.

    ``from m import n`` gives ``m.n`` when that is an in-tree submodule, else ``m``.
    """
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # level 1 is the file's own package; each further dot climbs one package
            parts = package[: max(len(package) - node.level + 1, 0)] if node.level else ()
            base = ".".join([*parts, *([node.module] if node.module else [])])
            subs = {f"{base}.{a.name}" for a in node.names if module_file(root, f"{base}.{a.name}")}
            found |= {(node.lineno, module) for module in subs}
            if len(subs) < len(node.names):
                found.add((node.lineno, base))
    return sorted(found)


def layer_violations(root: Path) -> list[str]:
    """``path:line: imports module (floors)`` for each import of a higher floor."""
    found = []
    for path in source_files(root):
        here = path.relative_to(root).parts[0].removesuffix(".py")
        for line, module in collect_imports(root, path):
            there = module.split(".")[0]
            if FLOORS.get(there, -1) > FLOORS[here]:
                found.append(f"{path.relative_to(root).as_posix()}:{line}: imports {module} "
                             f"({here} is floor {FLOORS[here]}, {there} is floor {FLOORS[there]})")
    return found


def has_code(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return len(tree.body) > (0 if ast.get_docstring(tree) is None else 1)


def import_graph(root: Path) -> Graph:
    """File -> files it imports; ``a.b.c`` also imports ``a`` and ``a.b``.

    An empty or docstring-only ``__init__.py`` runs nothing, so it is no node.
    """
    graph: Graph = {}
    for path in source_files(root):
        targets = graph.setdefault(path, set())
        for _, module in collect_imports(root, path):
            parts = module.split(".")
            for n in range(1, len(parts) + 1):
                target = module_file(root, ".".join(parts[:n]))
                if target and target != path and (target.name != "__init__.py" or has_code(target)):
                    targets.add(target)
    return graph


def cycles(graph: Graph) -> list[list[Path]]:
    """Strongly connected components of two or more files (Tarjan), each sorted."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    found: list[list[Path]] = []

    def visit(node: Path) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_loop(graph: Graph, component: list[Path]) -> list[Path]:
    """One concrete loop from the component's first file back to it (breadth first)."""
    start, members = component[0], set(component)
    paths, queue = {start: [start]}, [start]
    for node in queue:
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no loop")


def names(root: Path, paths: list[Path]) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def test_imports_run_downhill_only() -> None:
    violations = layer_violations(ROOT)
    assert not violations, "imports of a higher floor:\n" + "\n".join(violations)


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    report = [f"cycle among {len(c)} files: {', '.join(names(ROOT, c))}\n"
              f"  e.g. {' -> '.join(names(ROOT, shortest_loop(graph, c)))}"
              for c in cycles(graph)]
    assert not report, "import cycles:\n" + "\n".join(report)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


UP = "({} is floor {}, {} is floor {})"
CASES = {
    "uphill": ({"envelopes/a.py": "import axis.x\n", "axis/x.py": ""},
               [f"envelopes/a.py:1: imports axis.x {UP.format('envelopes', 0, 'axis', 3)}"], []),
    "type-checking uphill": (
        {"routing/r.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from axis import store\n", "axis/store.py": ""},
        [f"routing/r.py:3: imports axis.store {UP.format('routing', 2, 'axis', 3)}"], []),
    "nothing imports cli": (
        {"axis/a.py": "def f() -> None:\n    import cli\n", "cli.py": "import axis.a\n"},
        [f"axis/a.py:2: imports cli {UP.format('axis', 3, 'cli', 4)}"], [["axis/a.py", "cli.py"]]),
    "function-local cycle": (
        {"signing/a.py": "import signing.b\n",
         "signing/b.py": "def f() -> None:\n    from signing import a\n"},
        [], [["signing/a.py", "signing/b.py"]]),
    "relative cycle": (
        {"routing/hub.py": "from .sub.q import h\n", "routing/sub/q.py": "from ..hub import x\n"},
        [], [["routing/hub.py", "routing/sub/q.py"]]),
    "non-empty __init__ is a node": (
        {"axis/__init__.py": "from axis.a import f\n", "axis/a.py": "import axis.b\n",
         "axis/b.py": ""},
        [], [["axis/__init__.py", "axis/a.py"]]),
    "clean": (
        {"envelopes/__init__.py": "", "envelopes/m.py": "import json\n",
         "signing/__init__.py": '"""Docstring only."""\n', "signing/s.py": "import signing\n",
         "routing/r.py": "from envelopes.m import json\nfrom signing import s\n",
         "axis/x.py": "import routing.r\nfrom . import y\n", "axis/y.py": "import signing.s\n",
         "cli.py": "from axis import x, y\n"},
        [], []),
}


@pytest.mark.parametrize(("files", "violations", "loops"), CASES.values(), ids=CASES.keys())
def test_checker_on_synthetic_tree(
    tmp_path: Path, files: dict[str, str], violations: list[str], loops: list[list[str]]
) -> None:
    write_tree(tmp_path, files)
    assert layer_violations(tmp_path) == violations
    assert [names(tmp_path, c) for c in cycles(import_graph(tmp_path))] == loops


def test_relative_imports_resolve_from_the_files_package(tmp_path: Path) -> None:
    write_tree(tmp_path, {"axis/errors.py": "", "axis/store.py": "", "axis/commands/common.py": "",
                          "axis/commands/x.py": "from . import common\nfrom .. import errors\n"
                                                "from ..store import S\nfrom . import VALUE\n"})
    assert collect_imports(tmp_path, tmp_path / "axis/commands/x.py") == [
        (1, "axis.commands.common"), (2, "axis.errors"), (3, "axis.store"), (4, "axis.commands")]
