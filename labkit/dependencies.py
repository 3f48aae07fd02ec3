"""What a labkit module's code depends on: the labkit modules it imports, transitively, read with `ast`.

Used for the cache key (a result depends on the code of the modules its experiment imports, not on plots or
notebooks) and by the test that keeps imports running one way. Function-level imports count; imports made
by name at run time (`importlib.import_module`) do not.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def module_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of `labkit.x.y` under `root` (a package's `__init__.py`), or None when there is none."""
    base = root.parent / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(module: str, source: str, is_package: bool = False, root: Path = PACKAGE_DIR) -> set[str]:
    """Every labkit module that `source` (the text of `module`) imports, as module names."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "labkit"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
            if base.split(".")[0] != "labkit":
                continue
            for alias in node.names:  # `from labkit import train` names a module; `from labkit.x import f` not
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_path(candidate, root) else base)
    return found


def closure(module: str, root: Path = PACKAGE_DIR) -> list[str]:
    """`module` and every labkit module it imports, directly or not (parent packages included), sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name, root)
        if path is None:
            continue
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # importing a.b runs a
        todo += parents + sorted(imported_modules(name, path.read_text(), path.name == "__init__.py", root))
    return sorted(seen)


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings (comments are not in the tree): what it computes."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


@functools.lru_cache(maxsize=64)
def fingerprint(module: str, root: Path = PACKAGE_DIR) -> str:
    """A hash of the code (not the docstrings or comments) of `module` and everything it imports in labkit."""
    digest = hashlib.sha256()
    for name in closure(module, root):
        path = module_path(name, root)
        if path is not None:
            digest.update(name.encode())
            digest.update(_code_only(path.read_text()).encode())
    return digest.hexdigest()[:16]
