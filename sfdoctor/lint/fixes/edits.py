"""Fix builders shared by rules."""

from __future__ import annotations

import libcst as cst

from ...findings import Edit, Fix, Location
from ..rule import FileContext


def set_keyword(
    context: FileContext,
    call: cst.Call,
    keyword: str,
    value: str,
    existing: cst.BaseExpression | None,
    applicability: str,
) -> Fix:
    """Set `keyword=value` on a call: replace the argument's value where it is given, else add it
    after the last argument, on a line of its own when the call has one argument per line."""
    if existing is not None:
        start, end = context.location(existing)
        return Fix(f"set {keyword}={value}", applicability, (Edit(value, start, end),))  # type: ignore[arg-type]
    last = call.args[-1]
    # the argument node ends after a parenthesised value's `)`; the value's own range stops inside it
    start, end = context.location(last)
    if isinstance(last.comma, cst.Comma) and start.row > context.location(call)[0].row:
        _, after_comma = context.location(last.comma)
        edit = Edit(f'\n{" " * (start.column - 1)}{keyword}={value},', after_comma, after_comma)
    else:
        edit = Edit(f", {keyword}={value}", end, end)
    return Fix(f"add {keyword}={value}", applicability, (edit,))  # type: ignore[arg-type]


def freeze_code(context: FileContext, params: cst.BaseExpression) -> tuple[str, str]:
    """(a line that freezes the parameters `params` gives, what it names): `module.requires_grad_(False)`
    for `module.parameters()`, else a loop over them."""
    if (
        isinstance(params, cst.Call)
        and not params.args
        and isinstance(params.func, cst.Attribute)
        and params.func.attr.value == "parameters"
    ):
        module = context.index.code(params.func.value)
        return f"{module}.requires_grad_(False)", module
    listed = context.index.code(params)
    return f"for parameter in {listed}: parameter.requires_grad_(False)", listed


def call_statement(context: FileContext, call: cst.Call) -> cst.SimpleStatementLine | None:
    """The line that is nothing but this call (`scheduler.step()`), or None."""
    statement = context.index.site_of[call].statement
    if (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and statement.body[0].value is call
    ):
        return statement
    return None


def indentation(context: FileContext, statement: cst.CSTNode) -> str | None:
    """The whitespace before a statement that starts its line; None after `:` or `;` on one line."""
    start = context.location(statement)[0]
    prefix = context.lines[start.row - 1][: start.column - 1]
    return prefix if not prefix.strip() else None


def insert_before(context: FileContext, statement: cst.CSTNode, code: str) -> Edit | None:
    """New lines `code` above the statement, at its indentation (comments above it stay above it)."""
    indent = indentation(context, statement)
    if indent is None:
        return None
    # at the start of the line, where an insertion after the previous statement goes too: two
    # fixes inserting there clash, and the second is made again from the first one's result
    line_start = Location(context.location(statement)[0].row, 1)
    return Edit(f"{indent}{_indented(code, indent)}\n", line_start, line_start)


def insert_after(context: FileContext, statement: cst.CSTNode, code: str) -> Edit | None:
    """New lines `code` below the statement (below all of a compound statement's body)."""
    indent = indentation(context, statement)
    if indent is None:
        return None
    code = _indented(code, indent)
    after, line_break = after_line(context, context.location(statement)[1].row)
    return Edit(f"{indent}{code}\n" if line_break else f"\n{indent}{code}", after, after)


def after_line(context: FileContext, row: int) -> tuple[Location, bool]:
    """Where line `row` ends, its line break included, and whether it has one (the file's last
    line may not)."""
    line = context.lines[row - 1]
    if line.rstrip("\r\n") == line:
        return Location(row, len(line) + 1), False
    return Location(row + 1, 1), True


def _indented(code: str, indent: str) -> str:
    """Every line of `code` after the first at `indent` (the first goes where the edit starts)."""
    return code.replace("\n", f"\n{indent}")


def remove_statements(context: FileContext, statements: list[cst.CSTNode]) -> tuple[Edit, ...]:
    """Delete whole statement lines (a trailing comment goes with its line); a block left empty
    keeps a `pass` in place of its first statement."""
    removed = {id(statement) for statement in statements}
    edits = []
    for statement in statements:
        start, end = context.location(statement)
        body, _ = context.index.block.get(statement, ((), 0))
        if body and body[0] is statement and all(id(s) in removed for s in body):
            edits.append(Edit("pass", start, end))
            continue
        edits.append(Edit("", Location(start.row, 1), after_line(context, end.row)[0]))
    return tuple(edits)
