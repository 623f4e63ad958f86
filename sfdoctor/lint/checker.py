"""Lint one file: parse it, run the selected rules, drop what `# noqa` suppresses, summarise it.

Imported on the first file that needs analysing, not with the engine: a run whose results all come
from the cache never loads libcst or the rules.
"""

from __future__ import annotations

import ast
import re
import traceback
from pathlib import Path

import libcst as cst

from ..findings import Finding, Location, RuleInfo
from .engine import FileResult, Settings
from .files.magics import without_magics
from .files.source import utf8_source
from .project.summary import summarise
from .project.view import ProjectView
from .rule import FileContext, ParsedFile, discover_rules, source_lines

SYNTAX_ERROR = RuleInfo("SF000", "syntax-error", "error", "A file that does not parse.")
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
IGNORE_NEXT = re.compile(r"^\s*#\s*sfdoctor:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
TOO_DEEP = "the code nests too deeply for the analysis (Python's recursion limit)"
PARSER_LIMIT = "Python parses it but libcst, the parser sfdoctor uses, does not (one of its limits)"


# The files this process parsed during a lint run (`keep`), by name, with their bytes: the project
# analysis summarises a file in a round and checks it with the rules at the end, which takes it out.
_kept: dict[str, tuple[bytes, ParsedFile, int]] = {}
KEEP_LINES = 150_000  # a parsed line costs about 3 KiB: at most about 450 MiB per process


def lint_source(
    filename: str, data: bytes, settings: Settings, force: bool = False, rules: bool = True, keep: bool = False
) -> FileResult:
    """Lint one file's bytes (`force`: even when the prefilter finds nothing in it, because it uses
    what another module defines). With `rules` the rules run; without, only the file's project summary
    is wanted (the linking rounds). `keep`: keep the parsed file for a later lint of the same bytes.
    Never raises: a crashing rule becomes an internal error line."""
    data = without_magics(utf8_source(data))  # IPython lines (notebooks and their exports) read as blank
    result = FileResult(lines=data.count(b"\n"))
    if settings.prefilter and not force and not settings.prefilter_pattern.search(data):
        return result
    result.analysed = True
    kept = _kept.get(filename) if keep else _kept.pop(filename, None)  # the last lint of the run takes it
    parsed = kept[1] if kept is not None and kept[0] == data else None
    if parsed is None:
        try:
            module = cst.parse_module(data)
        except cst.ParserSyntaxError as error:
            finding = _python_syntax_error(filename, data, error)
            if finding is None:
                result.errors.append(f"{filename}: not analysed: {PARSER_LIMIT}")
            else:
                result.findings.append(finding)
            return result
        except (UnicodeDecodeError, LookupError, SyntaxError, ValueError) as error:
            result.findings.append(_syntax_error(filename, 1, 1, f"cannot decode the file: {error}"))
            return result
    try:
        if parsed is None:
            parsed = ParsedFile(module, data)
            if keep and sum(lines for _, _, lines in _kept.values()) + result.lines <= KEEP_LINES:
                _kept[filename] = (data, parsed, result.lines)
        # a file linted on its own is a project of one module: the same analysis as in a run
        project = settings.project or ProjectView({filename: Path(filename).stem})
        context = FileContext(filename, parsed, settings.factories, project)
    except RecursionError:
        result.errors.append(f"{filename}: not analysed: {TOO_DEEP}")
        return result
    gave_up = []
    for rule_class in discover_rules() if rules else ():
        if not settings.enabled(rule_class.info.code):
            continue
        try:
            rule_class(context).check()
        except RecursionError:  # bounded by Python's recursion limit: the file is reported, not the run
            gave_up.append(rule_class.info.code)
        except Exception as error:  # noqa: BLE001 - one rule's bug must not take the run down
            where = traceback.extract_tb(error.__traceback__)[-1]
            result.errors.append(
                f"{filename}: internal error in {rule_class.info.code}: {type(error).__name__}: {error} "
                f"({Path(where.filename).name}:{where.lineno})"
            )
    if context.findings:
        result.findings = _unsuppressed(context, data)
    if not rules and settings.project is not None and filename in settings.project.modules:
        try:
            result.summary = summarise(context, settings.project.modules[filename])
        except RecursionError:
            gave_up.append("the project summary")
        except Exception as error:  # noqa: BLE001 - the file's own findings still count
            result.errors.append(f"{filename}: internal error in the project summary: {type(error).__name__}: {error}")
    if gave_up:
        result.errors.append(f"{filename}: not analysed by {', '.join(gave_up)}: {TOO_DEEP}")
    return result


def forget_parsed() -> None:
    """The end of a lint run: the files kept for it are dropped."""
    _kept.clear()


def _python_syntax_error(filename: str, data: bytes, error: cst.ParserSyntaxError) -> Finding | None:
    """Python's own message and position where it has one: libcst's can point a line too far.
    None when Python parses the file: libcst's parser has limits that Python's has not."""
    try:
        compile(data, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as python_error:
        return _syntax_error(filename, python_error.lineno or 1, python_error.offset or 1, python_error.msg)
    except ValueError:  # null bytes
        return _syntax_error(filename, error.raw_line, error.raw_column + 1, error.message)
    return None


def _syntax_error(filename: str, row: int, column: int, message: str) -> Finding:
    location = Location(max(row, 1), max(column, 1))
    return Finding(SYNTAX_ERROR, f"cannot parse: {message}", filename, location, location)


def _unsuppressed(context: FileContext, data: bytes) -> list[Finding]:
    lines = source_lines(data.decode(context.module.encoding, errors="replace"))
    covered = _ignore_comment_ranges(context, lines)
    kept = []
    for finding in context.findings:
        row = finding.location.row
        line = lines[row - 1] if row <= len(lines) else ""
        if _codes_match(NOQA.search(line), finding.code):
            continue
        if any(first <= row <= last and _codes_match(match, finding.code) for first, last, match in covered):
            continue
        kept.append(finding)
    return kept


def _codes_match(match: re.Match[str] | None, code: str) -> bool:
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or code in re.findall(r"[A-Z]+[0-9]+", codes.upper())


def _ignore_comment_ranges(context: FileContext, lines: list[str]) -> list[tuple[int, int, re.Match[str]]]:
    """`# sfdoctor: ignore[...]` on the line before a statement covers all of its lines."""
    comments = {row: m for row, line in enumerate(lines, 1) if (m := IGNORE_NEXT.match(line))}
    if not comments:
        return []
    starts: dict[int, int] = {}
    for statement in context.index.parent_statement:
        code_range = context.position(statement)
        starts[code_range.start.line] = max(starts.get(code_range.start.line, 0), code_range.end.line)
    ranges = []
    for row, match in comments.items():
        target = row + 1
        while target <= len(lines) and (not lines[target - 1].strip() or lines[target - 1].lstrip().startswith("#")):
            target += 1
        if target in starts:
            ranges.append((target, starts[target], match))
    return ranges


def rule_infos() -> list[RuleInfo]:
    return [SYNTAX_ERROR, *(rule.info for rule in discover_rules())]
