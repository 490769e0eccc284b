"""The import graph of ``src/organic``: which package imports which, checked against the layers below.

    python scripts/imports.py          # the package graph, one line per package, then any violation
    python scripts/imports.py --dot    # the module graph in Graphviz's dot language

A module may import its own package and any package in a lower layer; packages in one layer may import each other
as long as no cycle forms. Every import counts, the ones inside functions too: a lazy import defers loading, it does
not remove the dependency. The exit status is 1 when a package imports one above it or modules import each other in
a cycle, so that CI (``tests/test_imports.py``) fails on the first such import.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "organic"

LAYERS = [
    {"taxonomy", "settings", "stats"},  # vocabulary, configuration, pure maths
    {"safety", "store"},  # the safety layer; the database and its records
    {"examples"},  # what an example is and how its label is decided
    {"generate", "embeddings"},  # models: loading, decoding, likelihoods, sentence embeddings
    {"formats"},  # BB3x, TRL and release formats, PII
    {"learn", "analyze", "evaluate"},  # training; the report and troll detection; judges and evaluation
    {"simulate", "serve"},  # simulated people; the server
    {"loop"},  # the loop's stages
    {"watch"},  # the loop as a service
    {"cli"},  # the command line
]
LAYER = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str | None:
    """``organic.learn.train`` -> ``learn``; ``organic`` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports(path: Path, modules: set[str]) -> set[str]:
    """The organic modules one file imports (``from organic.x import y`` counts ``organic.x.y`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        found |= {name for name in names if name in modules}
    return found


def module_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in SOURCE.rglob("*.py")}
    return {module: imports(path, set(files)) - {module} for module, path in sorted(files.items())}


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a package in a higher layer, or of a package no layer names."""
    problems = []
    for module, targets in graph.items():
        source = package_of(module)
        for target in sorted(targets):
            package = package_of(target)
            if source is None or package is None or package == source:
                continue
            for name in (source, package):
                if name not in LAYER:
                    problems.append(f"{name} is in no layer of scripts/imports.py ({module} -> {target})")
            if source in LAYER and package in LAYER and LAYER[package] > LAYER[source]:
                problems.append(f"{module} imports {target}: {package} is above {source}")
    return sorted(set(problems))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return sorted(groups)


def problems(graph: dict[str, set[str]] | None = None) -> list[str]:
    graph = module_graph() if graph is None else graph
    return upward(graph) + [f"import cycle: {' <-> '.join(group)}" for group in cycles(graph)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print the module graph in Graphviz's dot language")
    args = parser.parse_args()
    graph = module_graph()
    if args.dot:
        print("digraph organic {")
        for module, targets in graph.items():
            for target in sorted(targets):
                print(f'  "{module}" -> "{target}";')
        print("}")
    else:
        packages: dict[str, set[str]] = defaultdict(set)
        for module, targets in graph.items():
            packages[package_of(module) or "organic"] |= {package_of(t) for t in targets} - {package_of(module), None}
        for i, layer in enumerate(LAYERS):
            for package in sorted(layer):
                print(f"{i} {package:<11} -> {', '.join(sorted(packages.get(package, ()))) or '-'}")
    found = problems(graph)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
