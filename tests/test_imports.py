"""The package's import graph (``scripts/imports.py``): no package imports one above it, and no modules import each
other in a cycle."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "imports.py"
spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(graph)


def test_no_upward_import_and_no_cycle_in_the_package():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "5 learn" in run.stdout  # the package graph, by layer


def test_the_check_finds_an_upward_import_an_unknown_package_and_a_cycle():
    modules = {
        "organic.examples": {"organic.learn.train"},  # the ground floor importing a trainer
        "organic.learn.train": {"organic.learn.reward"},
        "organic.learn.reward": {"organic.learn.train"},  # a cycle inside one package
        "organic.newpkg.thing": {"organic.taxonomy"},  # a package no layer names
        "organic.taxonomy": set(),
    }
    found = graph.problems(modules)
    assert "organic.examples imports organic.learn.train: learn is above examples" in found
    assert "import cycle: organic.learn.reward <-> organic.learn.train" in found
    assert any(p.startswith("newpkg is in no layer") for p in found)
    assert len(found) == 3, found


def test_lazy_imports_inside_functions_count(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from organic.learn import train\n    import organic.store\n")
    assert graph.imports(source, {"organic.learn.train", "organic.store", "organic.learn"}) == {"organic.learn.train",
                                                                                                "organic.store"}
