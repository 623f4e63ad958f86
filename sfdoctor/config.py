"""`[tool.sfdoctor]` in the nearest pyproject.toml: found, parsed and validated."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FatalError
from .lint.files.discover import pattern_error
from .output import FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(FatalError):
    """A broken configuration: reported in one line, exit status 2."""


# key -> expected type, for each table; unknown keys and wrong types are errors.
LINT_KEYS: dict[str, type] = {
    "select": list,
    "ignore": list,
    "extend-select": list,
    "per-file-ignores": dict,
    "exclude": list,
    "extend-exclude": list,
    "output-format": str,
    "max-file-size": int,  # MB
}
# [tool.sfdoctor.lint] takes the same keys (Ruff style) plus the factories; a key may be set in one place.
LINT_TABLE_KEYS: dict[str, type] = {**LINT_KEYS, "optimizer-factories": list}
REPLAY_KEYS: dict[str, type] = {"script": str, "module": str, "args": list, "steps": int}


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    lint: dict[str, Any] = field(default_factory=dict)  # top-level keys and [tool.sfdoctor.lint]
    replay: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Folder that relative paths in the configuration are relative to."""
        return self.path.parent if self.path else Path.cwd()


def find_pyproject(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: Path | None = None, isolated: bool = False, start: Path | None = None) -> Config:
    if isolated:
        return Config()
    path = explicit or find_pyproject((start or Path.cwd()).resolve())
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    section = data.get("tool", {}).get("sfdoctor", {})
    if explicit is not None and "tool" not in data and data:
        section = data  # a standalone sfdoctor.toml without the [tool.sfdoctor] prefix
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.sfdoctor] must be a table")
    lint_table = section.get("lint", {})
    replay_table = section.get("replay", {})
    top = {key: value for key, value in section.items() if key not in ("lint", "replay")}
    _check(path, "tool.sfdoctor", top, LINT_KEYS)
    _check(path, "tool.sfdoctor.lint", lint_table, LINT_TABLE_KEYS)
    _check(path, "tool.sfdoctor.replay", replay_table, REPLAY_KEYS)
    twice = sorted(top.keys() & lint_table.keys())
    if twice:
        raise ConfigError(f"{path}: '{twice[0]}' is set in both [tool.sfdoctor] and [tool.sfdoctor.lint]")
    lint = {**top, **lint_table}
    for key in ("exclude", "extend-exclude", "per-file-ignores"):
        for pattern in lint.get(key, ()):
            if (error := pattern_error(pattern)) is not None:
                raise ConfigError(f"{path}: '{key}' has an invalid pattern {pattern!r}: {error}")
    for key, value in lint.get("per-file-ignores", {}).items():
        if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
            raise ConfigError(f"{path}: 'per-file-ignores' entry {key!r} must be a list of rule codes")
    if lint.get("max-file-size", 1) < 1:
        size = lint["max-file-size"]
        raise ConfigError(f"{path}: 'max-file-size' must be at least 1 (megabytes), got {size!r}")
    if lint.get("output-format", "full") not in FORMATS:
        raise ConfigError(
            f"{path}: 'output-format' must be one of {', '.join(FORMATS)}, got {lint['output-format']!r}"
        )
    return Config(path=path, lint=lint, replay=dict(replay_table))


def _check(path: Path, table: str, values: Any, schema: dict[str, type]) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{table}] must be a table")
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(
                f"{path}: unknown key '{key}' in [{table}]; expected one of {', '.join(schema)}"
            )
        expected = schema[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: '{key}' in [{table}] must be a {expected.__name__}, got {value!r}")
        if expected is list and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{path}: '{key}' in [{table}] must be a list of strings")
