"""The package's layers: every import, read from the source (also those inside
functions), goes down the order, and no two modules import each other through a chain.

    core ← data_pipelines ← network ← training ← {federated, inference ← video} ← api ← cli

``core`` imports NumPy and the standard library only; ``data_pipelines`` imports nothing
of ``fedpsyau_jax`` but ``core``. The checker runs on a planted back-arrow too, so a
checker that sees nothing fails here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fedpsyau_jax", "data_pipelines")

# (module prefix, layer): the first matching prefix wins, so longer prefixes come first
LAYER_OF = (
    ("fedpsyau_jax.core", "core"),
    ("fedpsyau_jax.version", "core"),
    ("fedpsyau_jax.config_loading", "core"),
    ("data_pipelines", "data_pipelines"),
    ("fedpsyau_jax.network", "network"),
    ("fedpsyau_jax.training", "training"),
    ("fedpsyau_jax.compile_cache", "training"),
    ("fedpsyau_jax.model_card", "training"),
    ("fedpsyau_jax.federated", "federated"),
    ("fedpsyau_jax.inference", "inference"),
    ("fedpsyau_jax.video", "video"),
    ("fedpsyau_jax.api", "api"),
    ("fedpsyau_jax.cli", "cli"),
)
_BELOW_TRAINING = {"core", "data_pipelines", "network", "training"}
MAY_IMPORT = {
    "core": {"core"},
    "data_pipelines": {"core", "data_pipelines"},
    "network": {"core", "data_pipelines", "network"},
    "training": _BELOW_TRAINING,
    "federated": _BELOW_TRAINING | {"federated"},
    "inference": _BELOW_TRAINING | {"inference"},
    "video": _BELOW_TRAINING | {"inference", "video"},
    "api": _BELOW_TRAINING | {"federated", "inference", "video", "api"},
    "cli": _BELOW_TRAINING | {"federated", "inference", "video", "api", "cli"},
}
# third-party packages the bottom layer must not load
NOT_IN_CORE = ("jax", "jaxlib", "flax", "optax", "orbax", "cv2", "dlib", "flwr", "tensorflow")


def layer_of(module: str) -> str | None:
    for prefix, layer in LAYER_OF:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None  # the package's own __init__ (lazy names) has no layer


def module_files(root: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module of the two packages under ``root``."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``path``: project modules resolved to
    the deepest known module, other packages by their top-level name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" names a module; "from mod import name" names its module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            found.append((node.lineno, name))
    return found


def check_layers(root: Path) -> list[str]:
    """Every problem as one line: an import against the order, a third-party import in
    ``core`` that would load JAX or media libraries, a cycle of modules."""
    files = module_files(root)
    known = set(files)
    problems, graph = [], {}
    for mod, path in files.items():
        src = layer_of(mod)
        graph[mod] = set()
        for line, target in imports_of(path, mod, known):
            rel = f"{path.relative_to(root)}:{line}"
            if target in known:
                if target != mod:
                    graph[mod].add(target)
                dst = layer_of(target)
                if src is not None and dst is not None and dst not in MAY_IMPORT[src]:
                    problems.append(f"{rel}: {mod} ({src}) imports {target} ({dst})")
                if target == "fedpsyau_jax" and src is not None:
                    problems.append(f"{rel}: {mod} imports the package root (import the module itself)")
            elif src == "core" and target.split(".")[0] in NOT_IN_CORE:
                problems.append(f"{rel}: {mod} (core) imports {target}")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    lost = [m for m in module_files(ROOT) if m != "fedpsyau_jax" and layer_of(m) is None]
    assert not lost, f"modules outside every layer (add them to LAYER_OF): {lost}"


def test_imports_follow_the_layers_and_form_no_cycle():
    problems = check_layers(ROOT)
    assert not problems, "\n".join(problems)


def _copy_tree(dst: Path) -> None:
    for mod, path in module_files(ROOT).items():
        target = dst / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


@pytest.mark.parametrize(
    "file, planted, expect",
    [
        # a reader that reaches up into training
        ("data_pipelines/readers/smic.py", "from fedpsyau_jax.training import losses", "imports fedpsyau_jax.training"),
        # the bottom layer loading JAX (inside a function still counts)
        ("fedpsyau_jax/core/errors.py", "def _f():\n    import jax\n", "(core) imports jax"),
        # the network importing the application front door
        ("fedpsyau_jax/network/gat.py", "from fedpsyau_jax import api", "imports fedpsyau_jax.api"),
        # two siblings that must stay apart
        ("fedpsyau_jax/federated/splits.py", "from fedpsyau_jax.inference import load_model", "(inference)"),
    ],
)
def test_a_planted_back_arrow_is_found(tmp_path, file, planted, expect):
    _copy_tree(tmp_path)
    path = tmp_path / file
    path.write_text(path.read_text(encoding="utf-8") + "\n" + planted + "\n", encoding="utf-8")
    problems = check_layers(tmp_path)
    assert any(file in p and expect in p for p in problems), problems


def test_a_planted_cycle_is_found(tmp_path):
    _copy_tree(tmp_path)
    path = tmp_path / "fedpsyau_jax/training/losses.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nfrom fedpsyau_jax.training import metrics\n")
    path = tmp_path / "fedpsyau_jax/training/metrics.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nfrom fedpsyau_jax.training import losses\n")
    problems = check_layers(tmp_path)
    assert any(p.startswith("import cycle") and "fedpsyau_jax.training.losses" in p for p in problems), problems


def test_top_level_modules_are_few():
    top = sorted(p.stem for p in (ROOT / "fedpsyau_jax").glob("*.py") if p.stem != "__init__")
    assert len(top) <= 8, top
