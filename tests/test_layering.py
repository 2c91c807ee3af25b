"""The floors of the package (../shared/DESIGN.md, "Layout"): no module
imports from a floor above its own, and no modules import each other.

Imports are read from the source with `ast`, at module level and inside
functions alike, so a deferred import cannot hide a dependency.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kerasbert"

# Lowest first. `kerasbert` itself (its `__init__`, the public names) sits
# above them all.
FLOORS = (
    ("utils",),
    ("text", "layers", "optimizers", "backbones", "tf1_checkpoint"),
    ("data", "models", "export", "int8"),
    ("training",),
    ("prediction", "reproduction"),
)
FLOOR_OF = {part: level for level, parts in enumerate(FLOORS) for part in parts}
TOP = len(FLOORS)


def module_names():
    """`{module name: path}` of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_names()


def floor(module):
    """The floor of a module (`TOP` for the package's own `__init__`)."""
    parts = module.split(".")
    return TOP if len(parts) == 1 else FLOOR_OF[parts[1]]


def imported_modules(module, path):
    """The package's modules that `module` imports, anywhere in its code."""
    imported = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from a.b import c` imports the module a.b.c when there is one.
                name = f"{base}.{alias.name}"
                imported.add(name if name in MODULES else base)
    return {name for name in imported if name in MODULES and name != module}


IMPORTS = {module: imported_modules(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_floor():
    for module in MODULES:
        assert floor(module) <= TOP, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_floor_above(module):
    above = sorted(name for name in IMPORTS[module] if floor(name) > floor(module))
    assert not above, (
        f"{module} (floor {floor(module)}) imports from a floor above it: "
        + ", ".join(f"{name} (floor {floor(name)})" for name in above)
    )


def test_no_import_cycles():
    cycles = []
    state = {}  # module -> "visiting" | "done"

    def visit(module, trail):
        state[module] = "visiting"
        for name in sorted(IMPORTS[module]):
            if state.get(name) == "visiting":
                cycles.append(trail[trail.index(name):] + [name])
            elif name not in state:
                visit(name, trail + [name])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not cycles, "Import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_checks_see_a_deferred_import(tmp_path):
    path = tmp_path / "example.py"
    path.write_text("def f():\n    from kerasbert.training import run_directory\n")
    assert imported_modules("kerasbert.models.example", path) == {
        "kerasbert.training.run_directory"
    }
