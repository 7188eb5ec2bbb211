"""The package's structure, checked: layers that only import downwards, no import circle, and
library internals only behind their compat modules.

Layers, top to bottom (a module may import its own layer and the ones below it)::

    entry points    app.__main__, app.cli, app.config_doc
    composition     app.service (builds a worker of a role)
    edges           app.api (HTTP), app.client (the Python client)
    streams         app.stream (Faust and aiokafka)
    services        app.generator (catalog + storage + sealing + metrics)
    catalog         app.catalog (dataset types)
    engine          app.engine (DuckDB, formats, object storage)
    platform        app.settings, app.metrics, app.health, app.sealing, app.demo_data, app.clock,
                    app.logs, app.tracing
    domain          app.domain (no I/O, no clock, no framework)

Imports inside functions count too: a lazy import hides a circle, it does not remove it.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "app"
LAYERS: list[tuple[str, ...]] = [
    ("app.__main__", "app.cli", "app.config_doc"),
    ("app.service",),
    ("app.api", "app.client"),
    ("app.stream",),
    ("app.generator",),
    ("app.catalog",),
    ("app.engine",),
    (
        "app.settings",
        "app.metrics",
        "app.health",
        "app.sealing",
        "app.demo_data",
        "app.clock",
        "app.logs",
        "app.tracing",
    ),
    ("app.domain",),
]
# Libraries whose private names only their compat module may touch.
GUARDED = ("faust", "mode", "aiokafka", "botocore", "aiobotocore")
COMPAT = {"app.stream.faust_compat", "app.stream.aiokafka_compat", "app.engine.botocore_compat"}
# Private hooks a library documents for subclasses (Faust's guide to custom codecs).
DOCUMENTED_HOOKS = {("faust.serializers.codecs.Codec", "_dumps"),
                    ("faust.serializers.codecs.Codec", "_loads")}  # fmt: skip
# What the domain may not import at all: I/O, frameworks, the engine's libraries.
DOMAIN_FORBIDDEN = (*GUARDED, "duckdb", "aiohttp", "rocksdict", "sqlite3", "socket", "httpx")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def imports(tree: ast.Module, known: set[str]) -> Iterator[str]:
    """Every module ``tree`` imports, at any depth (``from a import b`` is ``a.b`` when that
    is a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in known else node.module


def layer_of(name: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in layer):
            return i
    return None


def upward_imports(trees: dict[str, ast.Module]) -> list[str]:
    found = []
    for name, tree in trees.items():
        mine = layer_of(name)
        for target in imports(tree, set(trees)):
            theirs = layer_of(target) if target.startswith("app") else None
            if mine is not None and theirs is not None and theirs < mine:
                found.append(f"{name} -> {target}")
    return sorted(set(found))


def circles(trees: dict[str, ast.Module]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph = {n: {t for t in imports(tree, set(trees)) if t in trees and t != n}
             for n, tree in trees.items()}  # fmt: skip
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _resolve(expr: ast.expr, names: dict[str, str]) -> object | None:
    """The library object a base-class expression names (``S3SigV4Auth``, ``codecs.Codec``)."""
    dotted = ast.unparse(expr).split(".")
    if dotted[0] not in names:
        return None
    module, _, attribute = names[dotted[0]].partition(":")
    found: object = importlib.import_module(module)
    if attribute:
        try:  # a submodule (from faust.transport.drivers import aiokafka)
            found = importlib.import_module(f"{module}.{attribute}")
        except ModuleNotFoundError:
            found = getattr(found, attribute)
    for part in dotted[1:]:
        found = getattr(found, part)
    return found


def private_reaches(name: str, tree: ast.Module) -> list[str]:
    """Private attributes used on anything but ``self``/``cls``, private names passed to
    ``getattr``/``hasattr``/``setattr``, private names imported from a guarded library, and
    private methods of a guarded library's class overridden by a subclass."""
    names: dict[str, str] = {}  # local name -> "module" or "module:attribute"
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in GUARDED
        ):
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}:{a.name}"
            found += [f"imports {node.module}.{a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in GUARDED:
                    names[a.asname or a.name.split(".")[0]] = (a.asname and a.name) or a.name.split(
                        "."
                    )[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            # os._exit is public, documented API (an exit without cleanup), not an internal.
            public = isinstance(owner, ast.Name) and (owner.id, node.attr) == ("os", "_exit")
            if not public and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ClassDef):
            bases = [b for b in (_resolve(e, names) for e in node.bases) if isinstance(b, type)]
            for item in node.body:
                if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for base in bases:
                    defined = next((k for k in base.__mro__ if item.name in vars(k)), None)
                    if (
                        _private(item.name)
                        and defined is not None
                        and (f"{defined.__module__}.{defined.__qualname__}", item.name)
                        not in DOCUMENTED_HOOKS
                    ):
                        found.append(f"line {item.lineno}: {node.name} overrides {item.name}")
    return [f"{name} {what}" for what in found]


TREES = modules()


def test_every_module_of_the_package_has_a_layer() -> None:
    assert [n for n in TREES if n != "app" and layer_of(n) is None] == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(TREES) == []


def test_the_domain_imports_no_io_library_and_nothing_outside_the_domain() -> None:
    bad = [
        f"{name} -> {target}"
        for name, tree in TREES.items()
        if name.startswith("app.domain")
        for target in imports(tree, set(TREES))
        if target.split(".")[0] in DOMAIN_FORBIDDEN
        or (target.startswith("app") and not target.startswith("app.domain"))
    ]
    assert bad == []


def test_there_is_no_import_circle() -> None:
    assert circles(TREES) == []


def test_library_internals_are_used_only_in_the_compat_modules() -> None:
    found = [r for n, t in TREES.items() if n not in COMPAT for r in private_reaches(n, t)]
    assert found == []


# --- the checks themselves fail on what they are meant to catch --------------------------------


def _trees(**sources: str) -> dict[str, ast.Module]:
    return {name: ast.parse(source) for name, source in sources.items()}


def test_the_checks_catch_an_upward_import_a_lazy_circle_and_reaches() -> None:
    trees = _trees(**{
        "app.domain.rules": "def f():\n    from app.engine.duck import connect\n",
        "app.engine.duck": "import duckdb\nfrom app.catalog.types import Catalog\n",
        "app.catalog.types": "from app.engine.duck import connect\n",
    })  # fmt: skip
    assert upward_imports(trees) == ["app.domain.rules -> app.engine.duck",
                                     "app.engine.duck -> app.catalog.types"]  # fmt: skip
    assert circles(trees) == [["app.catalog.types", "app.engine.duck"]]
    reaches = private_reaches("m", ast.parse(
        "from faust.stores import rocksdb\n"
        "from botocore.auth import S3SigV4Auth\n"
        "class Signer(S3SigV4Auth):\n    def _should_sha256_sign_payload(self, r):\n"
        "        return self._own\n"
        "def f(app):\n    app.consumer._thread\n    getattr(store, '_dbs')\n"
        "class Codec(codecs.Codec):\n    def _dumps(self, obj):\n        return obj\n"
        "from faust.serializers import codecs\n"
    ))  # fmt: skip
    assert sorted(reaches) == ["m line 4: Signer overrides _should_sha256_sign_payload",
                               "m line 7: ._thread", "m line 8: getattr(..., '_dbs')"]  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMPAT))
def test_each_compat_module_exists(name: str) -> None:
    assert name in TREES
