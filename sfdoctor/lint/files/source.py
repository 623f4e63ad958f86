"""Reading a Python file for lint: regular files only, a size limit, the encoding by BOM or PEP 263."""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
import tokenize
from pathlib import Path

from .notebook import SIZE_FACTOR, InvalidNotebook, Notebook, is_notebook

MEGABYTE = 1_000_000
# Parsing and analysing costs about 600 bytes of memory per byte of source: 1 MB takes ~600 MB.
DEFAULT_MAX_FILE_SIZE = 1  # MB
CHUNK = MEGABYTE
# UTF-32 first: its little-endian BOM starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def source_lines(text: str) -> list[str]:
    """Lines with their own endings (str.splitlines also splits at form feeds and other characters)."""
    return LINE.findall(text)


class NotLintable(Exception):
    """A file that is not analysed, with the reason (one line)."""


def read_source(
    path: Path, max_bytes: int | None = None, wanted: re.Pattern[bytes] | None = None
) -> bytes | None:
    """The Python source to lint: a Python file's bytes, or a notebook's code cells (`notebook.py`)."""
    if not is_notebook(path):
        return read_file(path, max_bytes, wanted)
    # a notebook's outputs (images) make it far larger than its code: the limit is on the code
    data = read_file(path, None if max_bytes is None else max_bytes * SIZE_FACTOR)
    try:
        source = Notebook.parse(data or b"").text.encode("utf-8")
    except InvalidNotebook as error:
        raise NotLintable(str(error)) from None
    if max_bytes is None or len(source) <= max_bytes:
        return source
    if wanted is not None and not wanted.search(source):
        return None
    raise NotLintable(_over_limit(len(source), max_bytes, "its code cells: "))


def read_file(
    path: Path, max_bytes: int | None = None, wanted: re.Pattern[bytes] | None = None
) -> bytes | None:
    """The bytes of a regular file (a FIFO, socket or device would block or never end: NotLintable).

    A file over `max_bytes` is read in chunks and searched for `wanted` (the prefilter): None when it
    does not occur (nothing to lint), else NotLintable. OSError when the file cannot be read.
    """
    # O_NONBLOCK: opening a FIFO without a writer would block before the check below could run
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as stream:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotLintable(f"not a regular file ({file_kind(info.st_mode)})")
        if max_bytes is None or info.st_size <= max_bytes:
            return stream.read()
        if wanted is not None and not _occurs(stream, wanted):
            return None
        raise NotLintable(_over_limit(info.st_size, max_bytes))


def _over_limit(size: int, max_bytes: int, what: str = "") -> str:
    return (
        f"{what}{size / MEGABYTE:.1f} MB is over the size limit of {max_bytes / MEGABYTE:g} MB "
        "(max-file-size in [tool.sfdoctor], or --max-file-size)"
    )


def _occurs(stream: io.BufferedReader, pattern: re.Pattern[bytes]) -> bool:
    """Whether `pattern` (a short one) occurs in the stream, reading one chunk at a time."""
    head = stream.read(4)
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return True  # its text is not searchable as bytes: count it as a match
    tail = head
    while chunk := stream.read(CHUNK):
        window = tail + chunk
        if pattern.search(window):
            return True
        tail = window[-256:]  # a match across two chunks
    return bool(pattern.search(tail))


def file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def bom_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 by the file's byte order mark (Python's tokenizer knows only UTF-8's)."""
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), None)


def utf8_source(data: bytes) -> bytes:
    """A UTF-16/32 file (by its BOM) as UTF-8, so that the prefilter and the parser read its text;
    other files as they are (a PEP 263 cookie declares an ASCII-compatible encoding, and the parser
    follows it)."""
    encoding = bom_encoding(data)
    if encoding is None:
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeError:
        return data  # not UTF-16 after all: the parser says why


def source_encoding(data: bytes) -> str:
    """The encoding to decode and write the file with: its BOM, else PEP 263 (SyntaxError if bad)."""
    return bom_encoding(data) or tokenize.detect_encoding(io.BytesIO(data).readline)[0]
