"""Where a user's scenario lives: ``PATH.py:NAME`` or ``module:NAME``, checked in the parent, loaded in the child.

The parent (``qasr lab run``) never executes the user's code: it checks that the file or module
exists and that NAME is defined at its top level by reading the source (a missing file, a typo in
NAME or a syntax error is then a usage error before any child starts). The lab's child process
imports it (`load_target`), so whatever the import does (load a model, start threads) happens where
memory is measured, and a crash there costs the child only.

Modules are found the way ``python -m`` finds them: the current directory first, then ``sys.path``.
A file is imported under its own name (its stem) with its folder first on ``sys.path``, so it can
import its neighbours.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qasr.errors import UsageError

#: The prefix of a target that names one pytest test (the ``leak_limit`` marker's body form).
PYTEST_PREFIX = "pytest:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Target:
    """A user scenario: a file or a module, and the name of a function or class in it."""

    name: str
    path: str | None = None
    module: str | None = None

    @property
    def spec(self) -> str:
        """The canonical spelling the child receives (a file as an absolute path)."""
        return f"{self.path or self.module}:{self.name}"


def is_target(scenario: str) -> bool:
    """Whether a scenario argument names user code (``X:NAME``) rather than a built-in scenario."""
    return ":" in scenario


def parse_target(text: str) -> Target:
    """``PATH.py:NAME`` or ``module:NAME`` -> `Target` (no file is read). Raises `UsageError`."""
    location, _, name = text.rpartition(":")
    if not location or not _NAME.match(name):
        raise UsageError(f"scenario {text!r}: expected PATH.py:NAME or module:NAME, NAME a function or class")
    if location.endswith(".py") or os.sep in location or location.startswith("."):
        return Target(name=name, path=location)
    if not _MODULE.match(location):
        raise UsageError(f"scenario {text!r}: {location!r} is neither a .py file nor a module name")
    return Target(name=name, module=location)


def _module_file(dotted: str) -> Path | None:
    """The source file of a module, found without importing it or its packages (None: not found).

    Raises `UsageError` for a module found but not given as Python source we can read (an
    extension module is accepted with its name unchecked: the result is then its path)."""
    search: list[str] | None = [os.getcwd(), *sys.path]
    spec = None
    parts = dotted.split(".")
    for k in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: k + 1]), search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin not in ("built-in", "frozen") else None


def _top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names bound at a module's top level (inside if/try/with too), and whether any name may exist
    (``from x import *`` or a module ``__getattr__``)."""
    names: set[str] = set()
    anything = False
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            anything = anything or node.name == "__getattr__"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                anything = anything or alias.name == "*"
                names.add(alias.asname or alias.name.split(".")[0])
        for field in ("body", "orelse", "finalbody", "handlers"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                todo.extend(getattr(node, field, None) or [])
    return names, anything


def _check_source(path: Path, name: str, shown: str) -> None:
    """Read ``path`` and refuse it unless NAME is bound at its top level (nothing is executed)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise UsageError(f"cannot read scenario {shown}: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read scenario {shown}: {exc}") from None
    names, anything = _top_level_names(tree)
    if name not in names and not anything:
        found = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_"))
        listed = f" (it defines: {', '.join(found[:12])})" if found else ""
        raise UsageError(f"{shown} has no top-level function or class {name!r}{listed}")


def check_target(target: Target) -> Target:
    """Refuse a target whose file or module is missing or does not define NAME; files become absolute."""
    if target.path is not None:
        path = Path(target.path).expanduser()
        if not path.is_file():
            raise UsageError(f"scenario file not found: {target.path}")
        if path.suffix != ".py":
            raise UsageError(f"scenario file {target.path} is not a .py file")
        _check_source(path, target.name, target.path)
        return Target(name=target.name, path=str(path.resolve()))
    assert target.module is not None
    source = _module_file(target.module)
    if source is None:
        raise UsageError(f"no module named {target.module!r} (searched the current directory and sys.path)")
    if source.suffix == ".py":
        _check_source(source, target.name, f"module {target.module} ({source})")
    return target


def _import_file(path: Path) -> Any:
    """Import a .py file as a module named after it, its folder first on sys.path."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else f"qasr_lab_scenario_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_target(spec: str) -> Any:
    """In the child: import the file or module and return NAME (the user's function or class).

    Whatever the user's module raises on import propagates: the child records it with its traceback."""
    target = parse_target(spec)
    if target.path is not None:
        module = _import_file(Path(target.path))
    else:
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        module = importlib.import_module(target.module or "")
    try:
        return getattr(module, target.name)
    except AttributeError:
        raise UsageError(f"{spec}: the module has no attribute {target.name!r} once imported") from None
