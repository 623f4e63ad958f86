"""Configs that name a ScheduleFree optimizer: Hydra's `_target_: schedulefree.AdamWScheduleFree`, a
`class_name:` / `type:` / `optimizer:` entry, HF-style `optim: schedule_free_adamw` (axolotl,
LLaMA-Factory). A config is evidence that an optimizer the code builds from it *may* be ScheduleFree.
Also sfdoctor's own `optimizer-factories` setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

CONFIG_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".toml"})
MAX_CONFIGS = 2000
MAX_CONFIG_BYTES = 1 << 20
NAMED = re.compile(
    rb"""(?im)^\s*["']?(?:_target_|class_name|class|type|name|optim|optimizer(?:_type|_class|_name)?)["']?\s*[:=]\s*"""
    rb"""["']?(?P<name>[\w.]*ScheduleFree\w*|schedule_free_\w+)"""
)


def config_files(folders: set[Path]) -> Iterator[tuple[Path, bytes]]:
    """The config files beside the Python files and in their `conf*` / `config*` folders."""
    seen: set[Path] = set()
    for folder in folders:
        for candidate in (folder, *folder.glob("conf*/**")):
            for path in sorted(candidate.glob("*")) if candidate.is_dir() else ():
                if path.suffix in CONFIG_SUFFIXES and path not in seen and len(seen) < MAX_CONFIGS:
                    seen.add(path)
                    try:
                        yield path, path.read_bytes()[:MAX_CONFIG_BYTES]
                    except OSError:
                        continue


def configured_optimizers(files: list[tuple[Path, str]]) -> tuple[tuple[str, str, int], ...]:
    """(class or optim name, config file, row) for each config entry that names a ScheduleFree optimizer."""
    found = []
    cwd = Path.cwd()
    for path, data in config_files({path.parent for path, _ in files}):
        for match in NAMED.finditer(data):
            name = match.group("name").decode()
            try:
                shown = path.relative_to(cwd).as_posix()
            except ValueError:
                shown = str(path)
            found.append((name.rsplit(".", 1)[-1], shown, data.count(b"\n", 0, match.start("name")) + 1))
    return tuple(found)


def configured_factories(names: frozenset[str]) -> dict[str, int | None]:
    """`optimizer-factories` entries: "pkg.build" returns the optimizer, "pkg.get_optimizer[2]" returns
    a tuple whose element 2 is the optimizer (`name, args, optimizer = get_optimizer(...)`)."""
    found: dict[str, int | None] = {}
    for name in names:
        base, _, index = name.partition("[")
        found[base] = int(index.rstrip("]")) if index.rstrip("]").isdigit() else None
    return found
