"""Which medrepro code a job depends on, derived from its script's imports.

Snakemake reruns a job when its params change, not when a module its script imports changes.
Each rule therefore gets a ``code`` param: the hash of the static import closure, within
medrepro, of the rule's script (imports parsed from the source, followed transitively, function-
level imports included, with every enclosing package's ``__init__``), plus the Jinja2 templates
those modules name (string constants ending in ``.j2``). Nothing is imported to compute it.

Modules loaded by name at run time (models and trainers in :mod:`medrepro.train.registry`)
are not in the static closure; a training job adds the closure of its own model's module.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import medrepro

SRC_ROOT = Path(medrepro.__file__).resolve().parent  # .../src/medrepro
ROOT_NAME = "medrepro"
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.j2$")
# Where the workflow keeps its Jinja2 templates (the repository this package sits in).
TEMPLATE_DIR = SRC_ROOT.parents[1] / "workflow" / "templates"


def module_path(name: str) -> Path | None:
    """Source file of medrepro module ``name`` (a package's ``__init__.py``), None if none."""
    parts = name.split(".")
    if parts[0] != ROOT_NAME:
        return None
    base = SRC_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Absolute names of every module an AST imports (and of imported names that are modules)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return {n for n in found if n.split(".")[0] == ROOT_NAME and module_path(n) is not None}


@lru_cache(maxsize=None)
def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(roots: Iterable[str], script: Path | None = None) -> list[str]:
    """Sorted medrepro modules reachable from modules ``roots`` and from the imports of
    ``script`` (a file outside the package, e.g. a workflow script)."""
    todo: list[str] = []
    if script is not None:
        todo.extend(_imports(_parse(Path(script).resolve()), ""))
    todo.extend(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        for mod in _with_parents(name):
            if mod in seen:
                continue
            path = module_path(mod)
            if path is None:
                raise ValueError(f"module {mod!r} not found under {SRC_ROOT}")
            seen.add(mod)
            todo.extend(_imports(_parse(path), _package_of(mod, path)))
    return sorted(seen)


def templates_named(modules: Iterable[str]) -> list[str]:
    """Template names (string constants ending in ``.j2``) in the given modules' source."""
    names: set[str] = set()
    for mod in modules:
        for node in ast.walk(_parse(module_path(mod))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _TEMPLATE_NAME.match(node.value):
                names.add(node.value)
    return sorted(names)


def files_hash(modules: Iterable[str], templates: Iterable[str] = (), template_dir: Path | None = None) -> str:
    """sha256 over the modules' source (paths relative to src/) and the templates' bytes.

    Each module name stands for its own file only (a package for its ``__init__.py``)."""
    template_dir = TEMPLATE_DIR if template_dir is None else Path(template_dir)
    h = hashlib.sha256()
    for mod in sorted(set(modules)):
        path = module_path(mod)
        h.update(str(path.relative_to(SRC_ROOT.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in sorted(set(templates)):
        h.update(f"template:{name}".encode() + b"\0" + (template_dir / name).read_bytes() + b"\0")
    return h.hexdigest()


def code_param(script: Path, label: str, template_dir: Path | None = None, extra: Iterable[str] = ()) -> dict:
    """The ``code`` param of a rule: its script (``label``), the modules and templates it
    depends on, and one hash over all of them."""
    template_dir = TEMPLATE_DIR if template_dir is None else Path(template_dir)
    modules = closure(extra, script)
    templates = templates_named(modules)
    missing = [t for t in templates if not (template_dir / t).is_file()]
    if missing:
        raise ValueError(f"{script}: templates {missing} not found in {template_dir}")
    return {"script": label, "modules": modules, "templates": templates,
            "sha256": files_hash(modules, templates, template_dir)}
