"""Line and column of the nodes a rule reports, for a fraction of what libcst's `PositionProvider` costs.

`PositionProvider` generates the whole module's code while it tracks the line and column of every token,
about seven times the cost of generating the code alone, and most files report a handful of nodes. Here
libcst's own position-tracking code generation runs over just the statement of a block that holds a
reported node, started at the line where that statement's code starts and with the indentation around it:
the same positions, for the statements asked.

Where a statement starts comes from Python's `ast` (its C parser costs about a tenth of libcst's): the line
of the statement's first token, less the lines libcst gives the statement before that token (its leading
comments and blank lines, its decorators). The statements of libcst's blocks are matched with ast's
statement lists, in step (`a; b` is two ast statements, `elif` an `If` in `orelse`). The indentation around
a statement is that of the blocks around it, read from the tree, and which statement holds a node comes
from a walk over the nodes' fields, one statement at a time, only as far as the node asked for.

Where the source cannot tell (ast does not parse it, its statements do not match libcst's, a line holding
only a backslash continuation, which libcst's parser drops, or a statement whose generated lines do not
match ast's), one plain code-generation pass over the whole module notes where each statement starts
instead. This relies on libcst's code-generation state (`_codegen`, `CodegenState`), stable across
libcst 1.x; the tests compare every node's position with `PositionProvider`'s.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodeRange, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState

from .index import child_nodes

NEWLINE = re.compile(r"\r\n?|\n")
# A line that holds only a backslash continuation: libcst's parser drops it, so the lines of the code it
# generates (and PositionProvider's) no longer match the source's below it.
_LOST_LINE = r"(?:\A|[\r\n])[ \t\f]*\\(?:\r\n?|\n|\Z)"
LOST_LINE = re.compile(_LOST_LINE)
LOST_LINE_BYTES = re.compile(_LOST_LINE.encode())

_TryStar = getattr(cst, "TryStar", None)
_Match = getattr(cst, "Match", None)
# libcst's compound statements and the ast statements they are
_TWINS: dict[type, tuple[type, ...]] = {
    cst.If: (ast.If,),
    cst.For: (ast.For, ast.AsyncFor),
    cst.While: (ast.While,),
    cst.With: (ast.With, ast.AsyncWith),
    cst.Try: (ast.Try,),
    cst.FunctionDef: (ast.FunctionDef, ast.AsyncFunctionDef),
    cst.ClassDef: (ast.ClassDef,),
}
# and the small statements of a line: the same names, but for `del` (TypeAlias: Python 3.12 and later)
_SMALL_TWINS: dict[type, type] = {
    getattr(cst, name): getattr(ast, name)
    for name in ("Expr", "Assign", "AnnAssign", "AugAssign", "Return", "Raise", "Global", "Nonlocal", "Assert",
                 "Import", "ImportFrom", "Pass", "Break", "Continue", "TypeAlias")
    if hasattr(cst, name) and hasattr(ast, name)
} | {cst.Del: ast.Delete}
if _TryStar is not None and hasattr(ast, "TryStar"):
    _TWINS[_TryStar] = (ast.TryStar,)
if _Match is not None and hasattr(ast, "Match"):
    _TWINS[_Match] = (ast.Match,)

# a block statement -> (the line of its first token after its leading lines and decorators, the line of its
# last token, the indentation around it)
Anchors = dict[cst.CSTNode, tuple[int, int, tuple[str, ...]]]


@dataclass
class _StatementStarts(CodegenState):
    """Plain code generation that notes, for every node, the innermost block statement holding it, and
    for each such statement the token it starts at and the indentation around it."""

    members: dict[cst.CSTNode, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    member_of: dict[cst.CSTNode, cst.CSTNode] = field(default_factory=dict)
    blocks: frozenset[int] = frozenset()  # id() of the module and of the statements directly in a block
    _open: list[cst.CSTNode] = field(default_factory=list)

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.blocks:  # the module comes first: `_open` is never empty below
            self.members[node] = (len(self.tokens), tuple(self.indent_tokens))
            self._open.append(node)
        self.member_of[node] = self._open[-1]

    def after_codegen(self, node: cst.CSTNode) -> None:
        if self._open[-1] is node:
            self._open.pop()


class Positions:
    def __init__(
        self, module: cst.Module, block_statements: frozenset[int], source: bytes | str | None = None
    ) -> None:
        """`source`: the code `module` was parsed from (bytes as read, or text), whose lines the positions
        count; without it, `module.code` generates it."""
        self.module = module
        self._source = source
        self._block_statements = block_statements | {id(module)}  # the module holds its header and footer
        self._provider = PositionProvider()
        self._anchors: Anchors | None = None
        # the block statement that holds each node walked so far, and the statements not walked yet
        self._member_of: dict[cst.CSTNode, cst.CSTNode] = {}
        self._unwalked: list[cst.CSTNode] = [module]
        self._walked_whitespace = False
        # the whole-module code-generation pass, where the source cannot tell where statements start
        self._starts: _StatementStarts | None = None
        self._lines: dict[cst.CSTNode, int] = {}

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        computed = self._provider._computed
        if node not in computed:
            if self._starts is None:
                self._generate_from_source(node)
            else:
                self._generate(self._starts.member_of[node])
        return computed[node]

    # -- from the source -------------------------------------------------------------------

    def _generate_from_source(self, node: cst.CSTNode) -> None:
        anchors = self._source_anchors()
        if anchors or not self.module.body:  # without statements, every node is the module's
            member = self._member(node)
            if member is self.module:
                self._run(member, 1, ())
                return
            anchor = anchors.get(member)
            if anchor is not None:
                first, last, indent = anchor
                self._run(member, first - self._lines_before_first_token(member), indent)
                generated = self._provider._computed[member]
                if generated.start.line == first and generated.end.line == last:
                    return
        self._fall_back()  # the whole-module pass: the source cannot tell
        self[node]

    def _source_anchors(self) -> Anchors:
        """Empty where the source cannot tell where the statements start (or there are none)."""
        if self._anchors is None:
            source = self._source if self._source is not None else self.module.code
            lost = (LOST_LINE_BYTES if isinstance(source, bytes) else LOST_LINE).search(source)
            self._anchors = {} if lost else _anchors(self.module, source)
        return self._anchors

    def _lines_before_first_token(self, member: cst.CSTNode) -> int:
        """The lines libcst generates for a statement before its first token: its leading lines, its
        decorators (with their own leading lines, and perhaps over several lines), the lines after them."""
        lines = len(getattr(member, "leading_lines", ()))
        decorators = getattr(member, "decorators", ())
        if decorators:
            module = self.module
            state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
            for decorator in decorators:
                decorator._codegen(state)
            lines += len(NEWLINE.findall("".join(state.tokens)))
        return lines + len(getattr(member, "lines_after_decorators", ()))

    def _member(self, node: cst.CSTNode) -> cst.CSTNode:
        """The innermost block statement holding the node (the module for its header and footer)."""
        if id(node) in self._block_statements:
            return node
        member_of = self._member_of
        while node not in member_of:
            if not self._unwalked:
                if self._walked_whitespace:
                    raise KeyError(node)
                # whitespace, comments and punctuation: a second walk, over every field
                self._walked_whitespace = True
                self._unwalked.append(self.module)
            self._walk(self._unwalked.pop(), self._walked_whitespace)
        return member_of[node]

    def _walk(self, member: cst.CSTNode, every_field: bool) -> None:
        """Note the member for the nodes it holds; the block statements in it wait their turn."""
        member_of, blocks, unwalked = self._member_of, self._block_statements, self._unwalked
        pending = [member]
        while pending:
            current = pending.pop()
            member_of[current] = member
            for child in child_nodes(current, every_field):
                (unwalked if id(child) in blocks else pending).append(child)

    def _run(self, member: cst.CSTNode, line: int, indent: tuple[str, ...] | list[str]) -> None:
        state = PositionProvidingCodegenState(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            provider=self._provider,
            indent_tokens=list(indent),
            line=line,
        )
        member._codegen(state)

    # -- from one code-generation pass over the module -------------------------------------

    def _fall_back(self) -> None:
        self._provider._computed.clear()
        self._starts = _StatementStarts(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            blocks=self._block_statements,
        )
        self.module._codegen(self._starts)
        self._count_lines()

    def _count_lines(self) -> None:
        assert self._starts is not None
        tokens, line, done = self._starts.tokens, 1, 0
        for member, (start, _) in sorted(self._starts.members.items(), key=lambda item: item[1][0]):
            line += len(NEWLINE.findall("".join(tokens[done:start])))
            self._lines[member], done = line, start

    def _generate(self, member: cst.CSTNode) -> None:
        assert self._starts is not None
        self._run(member, self._lines[member], self._starts.members[member][1])


# -- the statements of libcst's blocks matched with ast's --------------------------------------


class _Mismatch(Exception):
    pass


def _anchors(module: cst.Module, source: bytes | str) -> Anchors:
    """Empty where ast does not parse the source, or its statements are not libcst's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like: libcst parsed them
            tree = ast.parse(source)
        return _Matcher(module.default_indent).block(module.body, tree.body, ())
    except (SyntaxError, ValueError, LookupError, RecursionError, MemoryError, _Mismatch):
        return {}


@dataclass
class _Matcher:
    """Walks libcst's blocks and ast's statement lists in step; `_Mismatch` where they differ."""

    default_indent: str
    found: Anchors = field(default_factory=dict)

    def block(self, body: Sequence[Any], statements: list[ast.stmt], indent: tuple[str, ...]) -> Anchors:
        found, at = self.found, 0
        for statement in body:
            kind = type(statement)
            if kind is cst.SimpleStatementLine:  # `a; b` is two ast statements
                end = at + len(statement.body)
                twins = statements[at:end]
                if not twins or len(twins) != end - at:
                    raise _Mismatch
                for small, twin in zip(statement.body, twins):
                    if type(twin) is not _SMALL_TWINS.get(type(small)):
                        raise _Mismatch
                found[statement] = (twins[0].lineno, twins[-1].end_lineno or 0, indent)
                at = end
            else:
                if at >= len(statements) or type(statements[at]) not in _TWINS.get(kind, ()):
                    raise _Mismatch
                twin = statements[at]
                found[statement] = (twin.lineno, twin.end_lineno or 0, indent)
                self.compound(statement, twin, indent)
                at += 1
        if at != len(statements):
            raise _Mismatch
        return found

    def compound(self, statement: Any, twin: Any, indent: tuple[str, ...]) -> None:
        kind = type(statement)
        if kind is cst.If:
            while type(statement.orelse) is cst.If:  # elif: ast's orelse holds just that If
                self.suite(statement.body, twin.body, indent)
                if len(twin.orelse) != 1 or type(twin.orelse[0]) is not ast.If:
                    raise _Mismatch
                statement, twin = statement.orelse, twin.orelse[0]
        if kind is _Match:
            if len(statement.cases) != len(twin.cases):
                raise _Mismatch
            # Match pushes its own indentation for the cases, then each case's block its own
            indent = (*indent, self.default_indent if statement.indent is None else statement.indent)
            for case, twin_case in zip(statement.cases, twin.cases):
                self.suite(case.body, twin_case.body, indent)
            return
        self.suite(statement.body, twin.body, indent)
        if kind is cst.Try or kind is _TryStar:
            if len(statement.handlers) != len(twin.handlers):
                raise _Mismatch
            for handler, twin_handler in zip(statement.handlers, twin.handlers):
                self.suite(handler.body, twin_handler.body, indent)
            self.clause(statement.finalbody, twin.finalbody, indent)
        if kind is not cst.ClassDef and kind is not cst.FunctionDef and kind is not cst.With:
            self.clause(statement.orelse, twin.orelse, indent)

    def clause(self, clause: Any, statements: list[ast.stmt], indent: tuple[str, ...]) -> None:
        """`else:` or `finally:`, None where there is none."""
        if clause is not None:
            self.suite(clause.body, statements, indent)
        elif statements:
            raise _Mismatch

    def suite(self, suite: Any, statements: list[ast.stmt], indent: tuple[str, ...]) -> None:
        if type(suite) is cst.IndentedBlock:  # it pushes its indentation for its statements
            inner = self.default_indent if suite.indent is None else suite.indent
            self.block(suite.body, statements, (*indent, inner))
        elif len(statements) != len(suite.body):  # a SimpleStatementSuite (`if x: a; b`): no block statement
            raise _Mismatch
