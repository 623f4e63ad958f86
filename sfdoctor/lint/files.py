"""Which files `sfdoctor lint PATH...` looks at."""

from __future__ import annotations

import os
from pathlib import Path

import pathspec

from ..errors import FatalError

SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "build", "dist", ".tox", ".nox", ".venv", "venv",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules", "site-packages", ".eggs"}
)


def discover(paths: list[str], exclude: pathspec.PathSpec | None = None, force_exclude: bool = False) -> list[tuple[Path, str]]:
    """Python files under `paths` as (path, display name); a missing path is a fatal error.

    Files named on the command line are always linted (unless `force_exclude`); folders are walked,
    skipping VCS and build folders, virtualenvs and whatever .gitignore ignores.
    """
    found: dict[Path, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FatalError(f"{raw}: no such file or directory")
        if path.is_file():
            if not (force_exclude and exclude is not None and exclude.match_file(_relative(path))):
                found.setdefault(path.resolve(), _display(path))
            continue
        for file in _walk(path, exclude):
            found.setdefault(file.resolve(), _display(file))
    return sorted(found.items(), key=lambda item: item[1])


def _walk(root: Path, exclude: pathspec.PathSpec | None) -> list[Path]:
    files = []
    ignores = _ancestor_gitignores(root.resolve())
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        gitignore = here / ".gitignore"
        if gitignore.is_file():
            ignores = ignores + [(here.resolve(), _load_gitignore(gitignore))]
        kept = []
        for name in sorted(dirnames):
            child = here / name
            if name in SKIP_DIRS or (child / "pyvenv.cfg").exists() or _ignored(child, ignores, exclude, True):
                continue
            kept.append(name)
        dirnames[:] = kept
        files += [here / n for n in sorted(filenames) if n.endswith(".py") and not _ignored(here / n, ignores, exclude, False)]
    return files


def _ignored(path: Path, ignores: list[tuple[Path, pathspec.PathSpec]], exclude: pathspec.PathSpec | None, is_dir: bool) -> bool:
    resolved = path.resolve()
    suffix = "/" if is_dir else ""
    for base, spec in ignores:
        try:
            relative = resolved.relative_to(base).as_posix()
        except ValueError:
            continue
        if spec.match_file(relative + suffix):
            return True
    return exclude is not None and exclude.match_file(_relative(path) + suffix)


def _ancestor_gitignores(folder: Path) -> list[tuple[Path, pathspec.PathSpec]]:
    """.gitignore files above `folder`, up to the repository root, apply inside it too."""
    found = []
    for parent in folder.parents:
        if (parent / ".gitignore").is_file():
            found.append((parent, _load_gitignore(parent / ".gitignore")))
        if (parent / ".git").exists():
            break
    return list(reversed(found))


def _load_gitignore(path: Path) -> pathspec.PathSpec:
    try:
        return pathspec.GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return pathspec.GitIgnoreSpec.from_lines([])


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _display(path: Path) -> str:
    """Relative to the current folder when inside it (like ruff), else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(resolved)
