"""Helpers for tests that drive the real `sfdoctor lint` CLI on files they write."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from sfdoctor.cli import cli


def lint(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["lint", *map(str, args)])


def write(name: str, text: str | bytes) -> Path:
    """Write a file (dedented text, or bytes as they are), creating its folder."""
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path
