"""The package's house rules, read from its own imports (module level and inside functions alike):
a lower layer never imports a higher one, sibling packages of one layer do not import each other, and there is no
import circle. The layers are the README's Layout section."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "ftlab"
# Layer of each top-level part of ftlab (the README's Layout); a part may import its own layer's modules only
# within its own subpackage, and any lower layer.
LAYERS = {
    "errors": 0, "exit_codes": 0, "console": 0,  # the foundation: what every layer may use
    "hub": 1, "assets": 1, "distributed": 1, "runtime": 1, "tasks": 1,
    "methods": 2,  # the method registry: the config reads its names, flags and defaults
    "config": 3,
    "data": 4, "models": 4,
    "runs": 5,
    "training": 6,
    "analysis": 7,
    "search": 8, "bench": 8, "curve": 8,
    "compare": 9,  # drives ordinary runs through the search machinery
    "commands": 10,  # one module per subcommand, on top
    "cli": 11,
    "__main__": 12,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def ftlab_imports(path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name, line) for every import of an ftlab module in the file, at any depth."""
    found = []
    is_package = path.name == "__init__.py"
    here = module_name(path).split(".")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, alias.name, node.lineno) for alias in node.names if alias.name.startswith("ftlab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "ftlab":
                continue
            for alias in node.names:
                # `from ftlab import exit_codes` imports the module ftlab.exit_codes
                submodule = f"{module}.{alias.name}"
                target = submodule if _is_module(submodule) else module
                found.append((target, alias.name, node.lineno))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def part_of(module: str) -> str:
    """The top-level part of ftlab a module belongs to: 'config' for ftlab.config.parse, 'cli' for ftlab.cli."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def import_graph() -> dict[str, list[tuple[str, str, int]]]:
    return {module_name(path): ftlab_imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def layer_violations(graph: dict[str, list[tuple[str, str, int]]]) -> list[str]:
    problems = []
    for module, imports in graph.items():
        part = part_of(module)
        for target, name, line in imports:
            target_part = part_of(target)
            if not part or not target_part or part == target_part:
                continue  # the package's own __init__, or within one subpackage
            if LAYERS[target_part] > LAYERS[part]:
                problems.append(f"{module} (line {line}) imports {name} from {target}: upward, "
                                f"{part} is layer {LAYERS[part]}, {target_part} is layer {LAYERS[target_part]}")
            elif LAYERS[target_part] == LAYERS[part]:
                problems.append(f"{module} (line {line}) imports {name} from {target}: {part} and {target_part} are "
                                f"siblings in layer {LAYERS[part]}")
    return problems


def import_cycles(graph: dict[str, list[tuple[str, str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), a package's __init__ importing its own
    submodules to re-export them left out: that is the package's face, not a circle of design."""
    edges = {module: sorted({target for target, _, _ in imports if target in graph and target != module
                             and not module.startswith(target + ".")})
             for module, imports in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return cycles


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(module) for module in import_graph()} - {""}
    assert parts == set(LAYERS)


def test_no_import_runs_upward_or_sideways():
    assert layer_violations(import_graph()) == []


def test_no_import_circle():
    assert import_cycles(import_graph()) == []


def test_the_checks_name_what_breaks_the_rules():
    """The checks themselves can fail: an upward import and a circle, made up, are reported by name."""
    graph = {"ftlab.config.schema": [("ftlab.training.run", "run_training", 3)],
             "ftlab.training.run": [("ftlab.config.schema", "Config", 9)],
             "ftlab.data.load": [("ftlab.models.load", "load_classifier", 5)]}
    problems = layer_violations(graph)
    assert problems[0] == ("ftlab.config.schema (line 3) imports run_training from ftlab.training.run: upward, "
                           "config is layer 3, training is layer 6")
    assert "siblings in layer 4" in problems[1]
    assert import_cycles(graph) == [["ftlab.config.schema", "ftlab.training.run"]]


@pytest.mark.parametrize("limit, measure", [(10, "top-level modules"), (400, "lines in the largest module")])
def test_the_house_stays_small_enough_to_read(limit, measure):
    modules = list(PACKAGE.rglob("*.py"))
    if measure == "top-level modules":
        value = len([path for path in PACKAGE.glob("*.py") if path.name != "__init__.py"])
    else:
        value = max(len(path.read_text(encoding="utf-8").splitlines()) for path in modules)
    assert value <= limit, f"{measure}: {value} > {limit}"


def test_the_config_layer_loads_no_heavy_library():
    """A mistyped flag must fail in well under a second: parsing and checking a config imports no torch,
    transformers, datasets or peft."""
    import subprocess
    import sys

    code = ("import sys; from ftlab.runs.plan import plan_run; plan_run(['--method', 'full']); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_no_module_is_imported_by_a_name_in_a_string():
    """Every import is one the graph above can see: no importlib.import_module or __import__ (a command table of
    module names as strings once hid the commands' imports from these checks)."""
    def by_name(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "import_module") or (
            isinstance(node, ast.Name) and node.id in ("import_module", "__import__")) or (
            isinstance(node, ast.ImportFrom) and any(alias.name == "import_module" for alias in node.names))

    found = [f"{module_name(path)} line {node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if by_name(node)]
    assert found == []
