"""IPython syntax in notebooks and in their `.py` exports: `!pip install ...`, `%matplotlib inline`,
`%%time`, `files = !ls`, `model?`.

None of these lines is valid Python where it starts a logical line, so the analysis reads each as a
blank line (same line count: positions stay right) and parses the rest; a fix never touches one.
A line inside brackets, a string or after a backslash is not a logical line's start: `% b` there is
Python (`(a\\n % b)`), and so is a `!` in a triple-quoted string.
"""

from __future__ import annotations

import re

from .source import source_encoding, source_lines

MAGIC = re.compile(
    r"""[ \t]*(?:
        [!%]                            # !shell, %line magic, %%cell magic
        | \?\??[\w.*]                   # ?help, ??source
        | [\w.*]+\?\??[ \t]*\r?$        # help?, source??
        | [\w.]+[ \t]*=[ \t]*[!%]       # files = !ls, t = %timeit f()
    )""",
    re.VERBOSE,
)
# A quick search before the line-by-line pass: most files have no line that starts like a magic.
_CANDIDATE = r"^[ \t]*(?:[!%?]|[\w.*]+\?|[\w.]+[ \t]*=[ \t]*[!%])"
CANDIDATE = re.compile(_CANDIDATE, re.MULTILINE)
CANDIDATE_BYTES = re.compile(_CANDIDATE.encode(), re.MULTILINE)


def magic_rows(text: str) -> set[int]:
    """The rows (from 1) of IPython lines, continuation lines of a `!cmd \\` included."""
    rows: set[int] = set()
    if not CANDIDATE.search(text):
        return rows
    depth, quote, continued, in_magic = 0, "", False, False
    for row, line in enumerate(source_lines(text), 1):
        if in_magic or (not depth and not quote and not continued and MAGIC.match(line)):
            rows.add(row)
            in_magic = line.rstrip("\r\n").endswith("\\")
            continue
        depth, quote, continued = _scan(line, depth, quote)
    return rows


def blank_magic_lines(text: str) -> str:
    """`text` with its IPython lines emptied (their line breaks kept)."""
    rows = magic_rows(text)
    return "".join(line[len(line.rstrip("\r\n")) :] if row in rows else line for row, line in enumerate(source_lines(text), 1))


def without_magics(data: bytes) -> bytes:
    """A Python file's bytes with their IPython lines emptied; the bytes as they are when it has none
    or cannot be decoded (the parser then says why)."""
    if not CANDIDATE_BYTES.search(data):
        return data
    try:
        encoding = source_encoding(data)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return data
    blanked = blank_magic_lines(text)
    return data if blanked == text else blanked.encode(encoding)


def _scan(line: str, depth: int, quote: str) -> tuple[int, str, bool]:
    """After `line`: (open brackets, the triple quote of a string still open, ends with a backslash)."""
    body = line.rstrip("\r\n")
    position = 0
    while position < len(body):
        if quote:
            end = _string_end(body, position, quote)
            if end is None:
                break
            position, quote = end, ""
            continue
        char = body[position]
        if char == "#":
            return depth, "", False
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char in "'\"":
            quote = body[position : position + 3] if body[position : position + 3] in ('"""', "'''") else char
            position += len(quote)
            continue
        position += 1
    if quote:  # a triple-quoted string goes on; a one-line string ends with its line
        return depth, quote if len(quote) == 3 else "", False
    return depth, "", body.endswith("\\")


def _string_end(body: str, position: int, quote: str) -> int | None:
    """Where the string closed by `quote` ends in `body` (after its quote), or None if not on this line."""
    while position < len(body):
        if body[position] == "\\":
            position += 2
        elif body.startswith(quote, position):
            return position + len(quote)
        else:
            position += 1
    return None
