"""Line and column of the nodes a rule reports, for a fraction of what libcst's `PositionProvider` costs.

`PositionProvider` generates the whole module's code while it tracks the line and column of every token,
about seven times the cost of generating the code alone, and most files report a handful of nodes. Here one
plain code-generation pass notes where each statement of a block starts (the line, and the indentation
around it), and libcst's own position-tracking code generation then runs over just the statement that holds
a reported node, started at that line with that indentation: the same positions, for the statements asked.
This relies on libcst's code-generation state (`_codegen`, `CodegenState`), stable across libcst 1.x; the
tests compare every node's position with `PositionProvider`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodeRange, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState

NEWLINE = re.compile(r"\r\n?|\n")


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
    def __init__(self, module: cst.Module, block_statements: frozenset[int]) -> None:
        self.module = module
        self._block_statements = block_statements | {id(module)}  # the module holds its header and footer
        self._starts: _StatementStarts | None = None
        self._lines: dict[cst.CSTNode, int] = {}
        self._provider = PositionProvider()

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        computed = self._provider._computed
        if node not in computed:
            self._generate(self._member(node))
        return computed[node]

    def _member(self, node: cst.CSTNode) -> cst.CSTNode:
        if self._starts is None:
            self._starts = _StatementStarts(
                default_indent=self.module.default_indent,
                default_newline=self.module.default_newline,
                blocks=self._block_statements,
            )
            self.module._codegen(self._starts)
            self._count_lines()
        return self._starts.member_of[node]

    def _count_lines(self) -> None:
        assert self._starts is not None
        tokens, line, done = self._starts.tokens, 1, 0
        for member, (start, _) in sorted(self._starts.members.items(), key=lambda item: item[1][0]):
            line += len(NEWLINE.findall("".join(tokens[done:start])))
            self._lines[member], done = line, start

    def _generate(self, member: cst.CSTNode) -> None:
        assert self._starts is not None
        state = PositionProvidingCodegenState(
            default_indent=self.module.default_indent,
            default_newline=self.module.default_newline,
            provider=self._provider,
            indent_tokens=list(self._starts.members[member][1]),
            line=self._lines[member],
        )
        member._codegen(state)
