"""The package's shape: imports run one way, a method is one module, config keys belong to methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ali.config import for_method, make_config
from ali.errors import AliError
from ali.methods import METHODS
from ali.methods.base import Method
from ali.presets import PRESETS

PACKAGE = Path(__file__).resolve().parents[1] / "ali"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the ali modules it imports anywhere in its body (late imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:  # `from ali.data import toy` names a module, `import load_toy` a symbol
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph, state, path = _import_graph(), {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_method_is_one_module_registered_by_name():
    modules = {p.stem.replace("_", "-") for p in (PACKAGE / "methods").glob("*.py")} - {"--init--", "base", "adversarial"}
    assert modules == set(METHODS)
    for name, method in METHODS.items():
        assert isinstance(method, Method) and method.name == name and method.title
        assert "generator" in method.optimizers and all(
            n == "generator" or n.startswith("discriminator") for n in method.optimizers
        )


def test_a_key_the_method_does_not_use_is_an_error():
    with pytest.raises(AliError, match="method 'vae' does not use config key.*recon_weight.*belongs to alice"):
        make_config({"method": "vae", "recon_weight": 3.0})
    with pytest.raises(AliError, match="method 'ali' does not use"):
        make_config({"method": "ali", "recon_trains": "decoder"})
    make_config({"method": "alice", "recon_weight": 3.0})  # its own key


def test_a_preset_serves_every_method_with_the_same_schedule():
    preset = PRESETS["toy25"]
    assert preset["method"] == "alice"
    for name in METHODS:
        config = make_config(for_method(preset, name))
        assert (config.method, config.steps, config.lr, config.decay_start) == (
            name,
            preset["steps"],
            preset["lr"],
            preset["decay_start"],
        )
    assert make_config(for_method(preset, "ali")).recon_weight == make_config({}).recon_weight  # dropped, not kept
