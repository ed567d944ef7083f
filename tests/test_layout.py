"""The package's shape: imports run one way (the layers of docs/CODE.md), a method is one module,
config keys belong to methods."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from ali.config import for_method, make_config
from ali.errors import AliError
from ali.methods import METHODS
from ali.methods.base import Method
from ali.presets import PRESETS

PACKAGE = Path(__file__).resolve().parents[1] / "ali"
CODE_MD = PACKAGE.parent / "docs" / "CODE.md"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the ali modules it imports anywhere in its body (late imports included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: `from . import x`, `from ..data import y`
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                for alias in node.names:  # `from ali.data import toy` names a module, `import load_toy` a symbol
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _layers() -> list[tuple[str, list[str]]]:
    """docs/CODE.md's layer list, top first: (title, the files and folders in it)."""
    text = CODE_MD.read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    layers = [
        (m.group(1), re.findall(r"`ali/([^`]*)`", m.group(2)))
        for m in re.finditer(r"^\d+\. ([^:]+): (.*)$", section, flags=re.MULTILINE)
    ]
    assert layers and all(entries for _, entries in layers), "docs/CODE.md: no layer list under '## Layers'"
    return layers


def _layer_of_each_module(modules: set[str]) -> dict[str, int]:
    """Module -> its layer's index (0 = top); a folder entry holds every module under it."""
    layer: dict[str, int] = {}
    for index, (_, entries) in enumerate(_layers()):
        for entry in entries:
            # `ali/cli.py` -> ali.cli, `ali/__init__.py` -> ali, `ali/training/` -> ali.training and below
            prefix = ("ali." + entry.rstrip("/").replace("/", ".")).removesuffix(".py").removesuffix(".__init__")
            found = {m for m in modules if m == prefix or (entry.endswith("/") and m.startswith(prefix + "."))}
            assert found, f"docs/CODE.md's layer list names ali/{entry}, which holds no module"
            for module in found:
                assert module not in layer, f"{module} is in two layers of docs/CODE.md"
                layer[module] = index
    unlisted = sorted(modules - set(layer))
    assert not unlisted, f"modules in no layer of docs/CODE.md's list: {', '.join(unlisted)}"
    return layer


def _folder(module: str) -> str | None:
    """The folder (subpackage) a module lives in; None for a module directly under ali/."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def test_imports_run_down_the_layers_of_code_md():
    graph = _import_graph()
    layer, titles = _layer_of_each_module(set(graph)), [title for title, _ in _layers()]
    upward = [
        f"{a} ({titles[layer[a]]}) imports {b} ({titles[layer[b]]})"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if layer[b] < layer[a]
    ]
    assert not upward, "imports against the layer order of docs/CODE.md:\n" + "\n".join(upward)


def test_no_two_folders_import_each_other():
    graph = _import_graph()
    edges = {(_folder(a), _folder(b)) for a in graph for b in graph[a]}
    edges = {(f, g) for f, g in edges if f and g and f != g}
    both_ways = sorted(f"ali/{f}/ <-> ali/{g}/" for f, g in edges if (g, f) in edges and f < g)
    assert not both_ways, "folders that import each other: " + ", ".join(both_ways)


def test_every_folder_is_a_package():
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    assert not sorted(f for f in folders if not (f / "__init__.py").is_file()), "folders without __init__.py"


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
    shared = {"__init__", "base", "adversarial", "objective"}  # the interface and what methods share
    modules = [
        importlib.import_module(f"ali.methods.{p.stem}") for p in (PACKAGE / "methods").glob("*.py") if p.stem not in shared
    ]
    assert all(isinstance(getattr(m, "METHOD", None), Method) for m in modules)
    assert sorted(m.METHOD.name for m in modules) == sorted(METHODS)  # one module per method, each registered
    assert all(METHODS[m.METHOD.name] is m.METHOD for m in modules)
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
