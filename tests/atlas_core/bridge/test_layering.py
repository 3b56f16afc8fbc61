"""Layers point one way: the measuring path (atlas_core.bridge, atlas_core.atlas) imports nothing from the twin that
renders its test data (only the modules that render training data may), and atlas_core's imports have no cycle.
Read from the source with ast (every import statement, at module level or inside a function)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[3] / "atlas_core"
RENDER_TRAINING_DATA = {"atlas_core.bridge.dataset"}  # twin-rendered training/evaluation samples


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the atlas_core modules a file imports (relative imports resolved; ``from pkg import x``
    counts x when x is a module, else pkg)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if (PKG.parent / Path(*sub.split("."))).with_suffix(".py").is_file()
                        or (PKG.parent / Path(*sub.split(".")) / "__init__.py").is_file() else base)
    return {m for m in out if m == "atlas_core" or m.startswith("atlas_core.")}


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {d for d in imports_of(p) if d in mods and d != m} for m, p in mods.items()}


def test_measuring_path_imports_nothing_from_the_twin():
    bad = []
    for sub in ("bridge", "atlas"):
        for p in (PKG / sub).rglob("*.py"):
            name = module_name(p)
            if name in RENDER_TRAINING_DATA:
                continue
            bad += [f"{name} imports {d}" for d in imports_of(p) if d.startswith("atlas_core.twin")]
    assert not bad, bad


def test_the_twin_takes_its_plan_and_hold_power_from_gcode():
    deps = graph()
    assert "atlas_core.gcode.plan" in deps["atlas_core.twin.render"]
    assert "atlas_core.gcode.thermal" in deps["atlas_core.twin.anomalies"]
    assert not any(d.startswith("atlas_core.bridge") for d in deps["atlas_core.twin.render"])


def test_atlas_core_imports_have_no_cycle():
    """Package __init__ modules are left out of the walk's edges *into* them (``from .x import y`` in a package's
    __init__ is the package re-exporting its own module, not a layer above it)."""
    deps = graph()
    edges = {m: {d for d in ds if not (PKG.parent / Path(*d.split(".")) / "__init__.py").is_file()}
             for m, ds in deps.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_the_walk_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: a lazy import inside a function and a relative import are both found."""
    src = PKG / "bridge" / "analyze.py"
    deps = imports_of(src)
    assert {"atlas_core.bridge.leaks", "atlas_core.bridge.registered", "atlas_core.gcode.plan"} <= deps
