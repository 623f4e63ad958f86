"""Telling the user's code apart from torch, schedulefree, sfdoctor and the standard library."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType, TracebackType

import sfdoctor


@dataclass(frozen=True)
class Site:
    filename: str
    row: int

    def __str__(self) -> str:
        return f"{display_path(self.filename)}:{self.row}"

    def to_json(self) -> dict:
        return {"filename": self.filename, "row": self.row}


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(os.path.dirname(sfdoctor.__file__))
    return tuple(os.path.realpath(root) + os.sep for root in roots)


LIBRARY_ROOTS = _library_roots()


@lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not os.path.realpath(filename).startswith(LIBRARY_ROOTS)


SFDOCTOR_FOLDER = os.path.realpath(os.path.dirname(sfdoctor.__file__)) + os.sep


@lru_cache(maxsize=4096)
def is_sfdoctor_file(filename: str) -> bool:
    return os.path.realpath(filename).startswith(SFDOCTOR_FOLDER)


def display_path(filename: str) -> str:
    """Relative to the working directory when below it, as users type paths."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative


def user_frame(frame: FrameType | None = None) -> FrameType | None:
    """The innermost frame of user code on the current stack (the caller of torch/schedulefree)."""
    frame = frame or sys._getframe(1)
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def user_site(frame: FrameType | None = None) -> Site | None:
    frame = user_frame(frame or sys._getframe(1))
    return Site(frame.f_code.co_filename, frame.f_lineno) if frame else None


# Frameworks that own an optimizer, by a file of theirs on the stack; the first match wins (Trainer uses accelerate).
FRAMEWORK_FILES = (
    ("Trainer", os.path.join("transformers", "trainer.py")),
    ("Lightning", os.path.join("lightning", "pytorch", "")),
    ("Lightning", os.path.join("pytorch_lightning", "")),
    ("accelerate", os.path.join("accelerate", "")),
)


def framework_on_stack() -> str | None:
    """Which framework's code is running the current call (building an optimizer, loading its state)."""
    files = []
    frame = sys._getframe(1)
    while frame is not None:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    return next((name for name, part in FRAMEWORK_FILES if any(part in filename for filename in files)), None)


def traceback_frames(tb: TracebackType | None) -> list[tuple[str, int, str]]:
    """(filename, row, function) from the outermost to the frame that raised."""
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    return frames
