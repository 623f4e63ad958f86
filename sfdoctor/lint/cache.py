"""A per-file result cache keyed by content hash, as ruff keeps one: a second run parses only what changed.

A file's result depends on its bytes, the settings, and what the rest of the project tells it (the
project view), so the key holds all three; the linter's own code is part of the key too, so an
upgraded sfdoctor never reads an older one's results. One pickle per cache folder, replaced
atomically; a cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

CACHE_FOLDER = ".sfdoctor_cache"
_PACKAGE = Path(__file__).resolve().parent.parent


def _code_stamp() -> str:
    """The sfdoctor sources' names, sizes and modification times."""
    stats = sorted((str(p.relative_to(_PACKAGE)), p.stat().st_size, p.stat().st_mtime_ns) for p in _PACKAGE.rglob("*.py"))
    return hashlib.sha256(repr(stats).encode()).hexdigest()


class ResultCache:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.path = folder / "lint.pickle" if folder is not None else None
        self.stamp = _code_stamp() if folder is not None else ""
        self.entries: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        if self.path is not None:
            try:
                stored = pickle.loads(self.path.read_bytes())
                if stored.get("stamp") == self.stamp:
                    self.entries = stored["entries"]
            except (OSError, pickle.PickleError, EOFError, AttributeError, KeyError, TypeError, ValueError):
                self.entries = {}

    def key(self, data: bytes, *context: object) -> str:
        digest = hashlib.sha256(data)
        digest.update(repr(context).encode())
        return digest.hexdigest()

    def get(self, key: str) -> Any | None:
        found = self.entries.get(key)
        if found is not None:
            self.used[key] = found
        return found

    def put(self, key: str, value: Any) -> None:
        self.used[key] = value

    def save(self) -> None:
        """Keep what this run used: entries of deleted or changed files go away."""
        if self.folder is None or self.path is None or not self.used:
            return
        try:
            self.folder.mkdir(exist_ok=True)
            ignore = self.folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Automatically created by sfdoctor.\n*\n")
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".lint-")
            with os.fdopen(handle, "wb") as file:
                pickle.dump({"stamp": self.stamp, "entries": self.used}, file, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only checkout: lint without a cache
