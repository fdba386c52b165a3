"""The architecture's rules, checked on the source (ARCHITECTURE.md, "Layers").

Every import statement counts, including imports inside functions, because a lazy import is still a
dependency: a server that lazily imports training code fails just the same when training/ is absent.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    # layer: top-level modules it must never import
    "munet": {"backend", "training", "blender_addon", "benchmarks", "tests", "zmq", "bpy", "msgpack"},
    "backend": {"training", "blender_addon", "benchmarks", "tests", "bpy"},
    "blender_addon": {"torch", "munet", "backend", "training", "benchmarks", "tests", "mediapipe", "anny"},
    "training": {"blender_addon", "benchmarks", "tests", "bpy"},
}
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 600


def _sources(layer: str) -> list[Path]:
    return sorted((REPO / layer).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute top-level module) of every import in a file; relative imports resolve inside the layer."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_what_it_may(layer):
    offences = [f"{path.relative_to(REPO)}:{line} imports {module}"
                for path in _sources(layer) for line, module in _imports(path) if module in FORBIDDEN[layer]]
    assert not offences, f"{layer}/ breaks the layering (ARCHITECTURE.md):\n" + "\n".join(offences)


def test_the_wire_format_imports_without_torch_or_munet():
    """The protocol package is copied into the add-on: it must import with msgpack and numpy alone."""
    code = ("import sys; import backend.protocol; "
            "bad = sorted(m for m in ('torch', 'munet', 'bpy', 'training', 'mediapipe', 'anny') if m in sys.modules); "
            "sys.exit('imported ' + ', '.join(bad) if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_model_library_imports_without_the_server_stack():
    code = ("import sys; import munet.pipeline, munet.export; "
            "bad = sorted(m for m in ('zmq', 'bpy', 'backend', 'training') if m in sys.modules); "
            "sys.exit('imported ' + ', '.join(bad) if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_graph(layers: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (what runs at import time)."""
    modules = {_module_name(p): p for layer in layers for p in _sources(layer)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles_between_modules():
    graph = _module_level_graph(("munet", "backend", "training"))
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1 and not node.startswith(target + "."):  # a package importing its own parent is fine
                cycles.append(" -> ".join(stack[stack.index(target):] + [node, target]) if target in stack else f"{node} -> {target}")
            elif target not in state:
                visit(target, stack + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_functions_and_files_stay_small():
    """No function over 80 lines and no source file over 600 lines outside tests/ (ARCHITECTURE.md)."""
    too_long = []
    for layer in ("munet", "backend", "training", "blender_addon", "benchmarks"):
        for path in _sources(layer):
            text = path.read_text()
            if text.count("\n") > MAX_FILE_LINES:
                too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "split these by responsibility:\n" + "\n".join(too_long)
