"""The floor table of DESIGN.md §1, enforced by reading every module's imports.

Imports go down the floors only (lazy imports inside functions count too), the two wings never
import each other, and no two modules import each other in a circle, so the layering cannot rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("posenet", "baselines", "data_tools")
OURS = PACKAGES

# (floor, package prefix); the longest matching prefix wins. The front door is the rest of posenet.
FLOORS = (
    (1, "posenet.core"),
    (2, "posenet.training"),
    (2, "baselines"),
    (3, "data_tools"),
    (4, "posenet.study"),
    (4, "posenet.tracker"),
    (5, "posenet"),
)
# DESIGN.md §1 "may import", folder by folder (besides itself); the front door imports anything.
MAY_IMPORT = {
    "posenet.core": set(),
    "posenet.training": {"posenet.core"},
    "baselines": {"posenet.core"},
    "data_tools": {"posenet.core", "baselines"},
    "posenet.study": {"posenet.core", "posenet.training", "baselines", "data_tools"},
    "posenet.tracker": {"posenet.core", "posenet.training", "baselines", "data_tools"},
    "posenet": {"posenet.core", "posenet.training", "baselines", "data_tools", "posenet.study", "posenet.tracker"},
}
THIRD_PARTY_ALLOWED = {  # floor 1 may use these and the standard library only
    "posenet.core": {"numpy", "scipy", "cv2", "h5py"},
}
WINGS = ("posenet.study", "posenet.tracker")
TF_FREE = ("posenet.core", "baselines", "posenet.tracker.contract", "posenet.tracker.runtime", "posenet.tracker.track",
           "posenet.tracker.udp", "posenet.tracker.video")
TF_MODULES = {"tensorflow", "keras", "tf2onnx", "tensorboard"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")}


def imported(path: Path, name: str) -> set[str]:
    """Every module `path` imports (top level or inside functions), as absolute dotted names."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def ours(target: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `target` names (a module, or a name inside one), else None."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def floor_of(name: str) -> tuple[int, str]:
    for floor, prefix in sorted(FLOORS, key=lambda item: -len(item[1])):
        if name == prefix or name.startswith(prefix + "."):
            return floor, prefix
    raise AssertionError(f"{name}: on no floor")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in (ours(t, known) for t in imported(path, name)) if target and target != name}
            for name, path in known.items()}


def test_every_module_sits_on_a_floor():
    for name in modules():
        floor_of(name)


def test_imports_only_go_down_and_wings_never_meet():
    problems = []
    for name, targets in graph().items():
        _, folder = floor_of(name)
        for target in targets:
            _, target_folder = floor_of(target)
            if name.startswith(target + ".") or target in PACKAGES:  # a parent package's __init__
                continue
            if folder != target_folder and target_folder not in MAY_IMPORT[folder]:
                problems.append(f"{name} ({folder}) imports {target} ({target_folder}): not allowed by DESIGN.md §1")
    assert not problems, "\n".join(sorted(problems))


def test_may_import_is_the_floor_table():
    """Every allowed import goes down a floor: the table below cannot grant an upward one."""
    floors = {prefix: floor for floor, prefix in FLOORS}
    for folder, allowed in MAY_IMPORT.items():
        assert all(floors[target] < floors[folder] for target in allowed), folder


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in edges.get(node, ()):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [node, target]) if target in stack
                              else f"{node} -> {target}")
            elif not state.get(target):
                visit(target, stack + [node])
        state[node] = 2

    for node in edges:
        if not state.get(node):
            visit(node, [])
    assert not cycles, "\n".join(cycles)


def test_core_uses_only_numpy_scipy_cv2_h5py():
    import sys

    allowed = THIRD_PARTY_ALLOWED["posenet.core"] | set(sys.stdlib_module_names) | {"posenet"}
    for name, path in modules().items():
        if not name.startswith("posenet.core"):
            continue
        for target in imported(path, name):
            top = target.split(".")[0]
            assert top in allowed, f"{name} imports {target}: core may use {sorted(THIRD_PARTY_ALLOWED['posenet.core'])} only"
            if top == "posenet":
                assert target.startswith("posenet.core"), f"{name} imports {target}: core imports nothing else of ours"


@pytest.mark.parametrize("prefix", TF_FREE)
def test_tf_free_modules_import_no_tensorflow(prefix):
    for name, path in modules().items():
        if name == prefix or name.startswith(prefix + "."):
            tops = {target.split(".")[0] for target in imported(path, name)}
            assert not tops & TF_MODULES, f"{name} imports {sorted(tops & TF_MODULES)}"


def test_the_checker_sees_a_violation(tmp_path):
    """The walker resolves relative and lazy imports (else the tests above could pass vacuously)."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from posenet.study import pipeline\nfrom . import sibling\n")
    found = imported(source, "posenet.core.mod")
    assert {"posenet.study", "posenet.study.pipeline", "posenet.core.sibling"} <= found
    assert floor_of("posenet.study.pipeline")[0] > floor_of("posenet.core.mod")[0]
