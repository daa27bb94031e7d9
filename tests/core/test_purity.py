"""The core stays sans-I/O: no sockets, files, clocks or OS randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import covey.core
import covey.relay

CORE = Path(covey.core.__file__).parent
RELAY = Path(covey.relay.__file__).parent
#: The relay's protocol is pure too (its state machines and in-memory
#: store); only its process (and the waits it holds on anyio events) and
#: its database stores, named here, do I/O.
RELAY_EDGES = {"server.py", "wake.py", "sqlite.py", "postgres.py"}


def pure_files() -> list[Path]:
    relay = [p for p in RELAY.rglob("*.py") if p.name not in RELAY_EDGES]
    return sorted([*CORE.rglob("*.py"), *relay])


#: Modules the core must never import: I/O, clocks, OS randomness, concurrency.
FORBIDDEN = {
    "anyio", "asyncio", "trio", "socket", "ssl", "select", "selectors", "sqlite3",
    "aiosqlite", "zeroconf", "subprocess", "threading", "multiprocessing", "os",
    "time", "datetime", "random", "secrets", "pathlib", "shutil", "tempfile", "io",
    "logging", "signal", "platformdirs", "click", "covey.store", "covey.cli",
    "covey.net", "covey.runtime", "covey.entropy",
}  # fmt: skip

#: Names that read the outside world even without an import.
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_nothing_that_does_io() -> None:
    offences = []
    for path in pure_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in imported_modules(tree):
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN):
                offences.append(f"{path.name} imports {module}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS
            ):
                offences.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    assert offences == []


def test_only_crypto_imports_nacl() -> None:
    importers = sorted(
        path.name
        for path in pure_files()
        if any(m.split(".")[0] == "nacl" for m in imported_modules(ast.parse(path.read_text())))
    )
    assert importers == ["crypto.py"]
