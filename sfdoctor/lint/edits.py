"""Fix builders shared by rules."""

from __future__ import annotations

import libcst as cst

from ..findings import Edit, Fix
from .rule import FileContext


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
    start = context.location(last)[0]
    end = context.location(last.value)[1]
    if isinstance(last.comma, cst.Comma) and start.row > context.location(call)[0].row:
        _, after_comma = context.location(last.comma)
        edit = Edit(f'\n{" " * (start.column - 1)}{keyword}={value},', after_comma, after_comma)
    else:
        edit = Edit(f", {keyword}={value}", end, end)
    return Fix(f"add {keyword}={value}", applicability, (edit,))  # type: ignore[arg-type]
