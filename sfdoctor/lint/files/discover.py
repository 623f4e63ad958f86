"""Which files `sfdoctor lint PATH...` looks at: Python files, Jupyter notebooks and schedulefree dependency files."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ...errors import FatalError
from ..analysis.dependencies import is_dependency_file
from .source import file_kind

# Skipped wherever they are, unless the configuration's `exclude` replaces this list.
DEFAULT_EXCLUDE = tuple(
    f"{name}/"
    for name in (
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "build",
        "dist",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        "site-packages",
        ".eggs",
    )
)


@dataclass(frozen=True)
class PathPatterns:
    """Gitignore-style patterns (excludes, per-file-ignores), relative to `root` (the config's folder)."""

    spec: pathspec.PathSpec
    root: Path

    @classmethod
    def from_patterns(cls, patterns: list[str] | tuple[str, ...], root: Path) -> PathPatterns:
        return cls(pathspec.GitIgnoreSpec.from_lines(patterns), root.resolve())

    def match(self, path: Path, is_dir: bool = False) -> bool:
        """Whether the patterns match `path`, an absolute path without symlinks (resolved)."""
        try:
            relative = path.relative_to(self.root).as_posix()
        except ValueError:
            relative = path.as_posix()
        return self.spec.match_file(relative + ("/" if is_dir else ""))


def discover(
    paths: list[str], excludes: PathPatterns | None = None, force_exclude: bool = False
) -> list[tuple[Path, str]]:
    """Files under `paths` as (resolved path, display name); a missing path is a fatal error.

    Files named on the command line are always linted unless `force_exclude` (pre-commit names every
    changed file). Folders are walked for Python, notebook and dependency files, skipping excluded folders,
    virtualenvs and whatever .gitignore ignores.
    """
    excludes = excludes or PathPatterns.from_patterns(DEFAULT_EXCLUDE, Path.cwd())
    cwd = Path.cwd().resolve()
    found: dict[Path, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FatalError(f"{raw}: no such file or directory")
        # Resolved once here: walking a resolved folder yields resolved paths (os.walk follows no links).
        resolved = path.resolve()
        if path.is_file():
            if not (force_exclude and excludes.match(resolved)):
                found.setdefault(resolved, _display(resolved, cwd))
            continue
        if not path.is_dir():
            raise FatalError(f"{raw}: not a regular file or folder ({file_kind(path.stat().st_mode)})")
        for file in _walk(resolved, excludes):
            found.setdefault(file, _display(file, cwd))
    return sorted(found.items(), key=lambda item: item[1])


def changed_files(rev: str) -> set[Path]:
    """Files added, copied, modified or renamed since the merge base with `rev`, committed or not."""
    top = _git(["rev-parse", "--show-toplevel"], "--diff-base needs a git repository")
    _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], f"--diff-base: unknown revision {rev!r}")
    names = _git(
        ["diff", "--name-only", "--diff-filter=ACMR", f"{rev}...HEAD"], f"--diff-base {rev}: git diff failed"
    )
    names += _git(["diff", "--name-only", "--diff-filter=ACMR", "HEAD"], "git diff HEAD failed")
    names += _git(["ls-files", "--others", "--exclude-standard", "--full-name"], "git ls-files failed")
    root = Path(top.strip())
    return {(root / name).resolve() for name in names.splitlines() if name}


def _git(args: list[str], error: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    except OSError as reason:
        raise FatalError(f"{error}: cannot run git: {reason.strerror}") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise FatalError(f"{error}" + (f": {detail[0]}" if detail else ""))
    return done.stdout


def _walk(root: Path, excludes: PathPatterns) -> list[Path]:
    if not root.is_relative_to(excludes.root) or excludes.match(root, is_dir=True):
        # A folder named on the command line is walked even inside an excluded or outside folder
        # (`sfdoctor lint .venv/lib/pkg`): only what lies below it is matched, relative to it.
        excludes = PathPatterns(excludes.spec, root)
    files = []
    ignores = _ancestor_gitignores(root)
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        gitignore = here / ".gitignore"
        if gitignore.is_file():
            ignores = ignores + [(here, _load_gitignore(gitignore))]
        kept = []
        for name in sorted(dirnames):
            child = here / name
            if (child / "pyvenv.cfg").exists() or _ignored(child, ignores, excludes, True):
                continue
            kept.append(name)
        dirnames[:] = kept
        files += [
            here / n
            for n in sorted(filenames)
            if (n.endswith((".py", ".ipynb")) or is_dependency_file(Path(n)))
            and not _special(here / n)
            and not _ignored(here / n, ignores, excludes, False)
        ]
    return files


def _special(path: Path) -> bool:
    """A FIFO, socket or device: never read (reading a FIFO blocks until something writes to it)."""
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False  # a dangling or looping link: reported as unreadable when it is read


def _ignored(
    path: Path, ignores: list[tuple[Path, pathspec.PathSpec]], excludes: PathPatterns, is_dir: bool
) -> bool:
    suffix = "/" if is_dir else ""
    for base, spec in ignores:
        try:
            relative = path.relative_to(base).as_posix()
        except ValueError:
            continue
        if spec.match_file(relative + suffix):
            return True
    return excludes.match(path, is_dir)


def _ancestor_gitignores(folder: Path) -> list[tuple[Path, pathspec.PathSpec]]:
    """.gitignore files above `folder`, up to the repository root, apply inside it too."""
    found = []
    for parent in folder.parents:
        if (parent / ".gitignore").is_file():
            spec = _load_gitignore(parent / ".gitignore")
            # a folder named on the command line is linted even if a .gitignore above it ignores it
            if not spec.match_file(folder.relative_to(parent).as_posix() + "/"):
                found.append((parent, spec))
        if (parent / ".git").exists():
            break
    return list(reversed(found))


def _load_gitignore(path: Path) -> pathspec.PathSpec:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    # git skips a line it cannot use (`[z-a]`, a lone `!`): so does the walk
    return pathspec.GitIgnoreSpec.from_lines([line for line in lines if pattern_error(line) is None])


def pattern_error(pattern: str) -> str | None:
    """Why a gitignore-style pattern is invalid, or None when it is valid."""
    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except re.error as error:
        return error.msg  # without the position in the regular expression pathspec built
    except ValueError as error:
        return str(error)
    return None


def _display(path: Path, cwd: Path) -> str:
    """Relative to the current folder when inside it (like ruff), else absolute."""
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)
