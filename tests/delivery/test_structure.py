"""The delivery package's shape: no import cycles, no state kept in classes."""

from __future__ import annotations

import ast
from pathlib import Path

import pipecat_roark.delivery as package

MODULES = {path.stem: path for path in Path(package.__file__).parent.glob("*.py")}


def siblings_imported(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at any depth: an import tucked into
    a function to dodge a cycle counts too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level == 1:
            names = [module] if module else [alias.name for alias in node.names]
        elif module.startswith("pipecat_roark.delivery."):
            names = [module.removeprefix("pipecat_roark.delivery.")]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & MODULES.keys()


def test_the_delivery_modules_import_each_other_without_a_cycle() -> None:
    graph = {name: siblings_imported(path) for name, path in MODULES.items()}
    assert graph["delivery"] >= {"lanes", "replay", "spool"}  # the graph sees real imports
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_no_delivery_class_keeps_shared_state_in_class_attributes() -> None:
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign):
                    assert "ClassVar" not in ast.unparse(statement.annotation), (
                        f"{name}.{node.name}: {ast.unparse(statement)}"
                    )
                elif isinstance(statement, ast.Assign):
                    assert not isinstance(
                        statement.value, (ast.Call, ast.Dict, ast.Set, ast.List)
                    ), f"{name}.{node.name}: {ast.unparse(statement)}"
