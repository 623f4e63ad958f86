"""Fixes of the mode rules: add the optimizer.train()/eval() calls the mode analysis finds missing.

Both fixes are unsafe: they change when the parameters hold y or x, which is the point, but code
the analysis cannot see (a callback, another module) may rely on the mode as it was.
"""

from __future__ import annotations

import libcst as cst

from ...findings import Edit, Fix
from ..analysis.index import Function, dotted_name
from ..analysis.modes import Facts, Key, ModeAnalysis, ModeReport, chains, mode_analysis
from ..analysis.values import Where
from ..rule import FileContext
from .edits import call_statement, insert_after, insert_before, remove_statements

EXITS = (cst.Return, cst.Raise, cst.Continue, cst.Break)


def train_before_loop(context: FileContext, step: cst.Call, facts: Facts) -> Fix | None:
    """`optimizer.train()` before the loop that steps, or at the top of its body when the eval()
    happens inside that loop; at the top of the function when the step is in no loop of its own."""
    analysis = context.analysis(mode_analysis)
    name = dotted_name(analysis.receiver_expressions[step])
    site = context.index.site_of[step]
    if name is None:
        return None
    loop = _innermost_loop(context, site.statement)
    evals = [origin for kind, origin in facts if kind == "eval" and isinstance(origin, cst.Call)]
    scope = loop or (site.function.node if site.function else None)
    built = [o for o in evals if o in analysis.sites and scope and _runs_inside(analysis, o, scope, frozenset())]
    if built:  # constructed in the loop or function: above the construction the name is not bound yet
        edit = insert_after(context, context.index.site_of[built[-1]].statement, f"{name}.train()")
        return Fix(f"insert {name}.train()", "unsafe", (edit,)) if edit else None
    if any(_before_in_loop(analysis, origin, step, loop) for origin in evals if loop is not None):
        return None  # eval() earlier in the same iteration: a train() above the loop would not help
    if loop is not None:
        if not any(_runs_inside(analysis, origin, loop, frozenset()) for origin in evals):
            target: cst.CSTNode = loop
        elif isinstance(loop.body, cst.IndentedBlock):
            target = loop.body.body[0]
        else:
            return None
    elif site.function is not None:
        body = site.function.node.body.body
        target = body[1] if _is_docstring(body[0]) and len(body) > 1 else body[0]
    else:
        return None
    edit = insert_before(context, target, f"{name}.train()")
    return Fix(f"insert {name}.train()", "unsafe", (edit,)) if edit else None


def eval_around(context: FileContext, report: ModeReport) -> Fix | None:
    """`optimizer.eval()` before an evaluation or save and `optimizer.train()` after it. After
    `model.eval()` the evaluation lasts until `model.train()` or the end of its block. A helper
    that is not given the optimizer is wrapped at its call sites instead."""
    if report.possible:
        return None
    analysis = context.analysis(mode_analysis)
    index = context.index
    if isinstance(report.node, cst.Decorator):  # `@torch.no_grad()`: the evaluation is the whole function
        helper = next((f for f in index.functions if any(d is report.node for d in f.node.decorators)), None)
    else:
        site = index.site_of.get(report.node)  # type: ignore[call-overload]
        if site is None or isinstance(site.statement, (cst.FunctionDef, cst.ClassDef)):
            return None
        fix = _wrap(context, analysis, report, site.statement, site.function, report.node)
        if fix is not None:
            return fix
        helper = site.function
    if helper is None or any(analysis.function_of.get(call) is helper for call in analysis.receivers):
        return None  # module level, or a helper that also steps or switches modes: leave it to the user
    callers = analysis.callers.get(helper, [])
    wraps = [_wrap(context, analysis, report, caller.statement, caller.function, caller.node) for caller in callers]
    if not wraps or any(wrap is None for wrap in wraps):
        return None
    edits = tuple(edit for wrap in wraps for edit in wrap.edits)  # type: ignore[union-attr]
    return Fix(f"{wraps[0].message} each call of {helper.name}()", "unsafe", edits)  # type: ignore[union-attr]


def _wrap(
    context: FileContext,
    analysis: ModeAnalysis,
    report: ModeReport,
    statement: cst.CSTNode,
    function: Function | None,
    start: cst.CSTNode,
) -> Fix | None:
    """Switch the optimizers to eval before `statement` and back to train where the evaluation ends."""
    keys = sorted(report.keys, key=lambda key: min(analysis.order.get(call, 0) for call in key))
    names = [_name_in(analysis, key, function) for key in keys]
    if None in names or not all(_holds(context, n, k, statement, function) for n, k in zip(names, keys)):  # type: ignore[arg-type]
        return None
    before = _previous_train_call(context, analysis, statement, names) or insert_before(
        context, statement, "\n".join(f"{name}.eval()" for name in names)
    )
    after = _after_evaluation(context, analysis, report, statement, start, "\n".join(f"{name}.train()" for name in names))
    if before is None or after is None:
        return None
    shown = " and ".join(names)  # type: ignore[arg-type]
    return Fix(f"insert {shown}.eval() before and {shown}.train() after", "unsafe", (before, after))


def _previous_train_call(
    context: FileContext, analysis: ModeAnalysis, statement: cst.CSTNode, names: list[str]
) -> Edit | None:
    """Removes `optimizer.train()` right before the statement: the evaluation before it (wrapped by
    an earlier fix, say) then runs on into this one instead of switching modes twice."""
    body, position = context.index.block.get(statement, ((), 0))
    if position == 0 or len(names) != 1:
        return None
    previous = body[position - 1]
    if _trained_by(context, analysis, previous) != names[0]:
        return None
    return remove_statements(context, [previous])[0]


def _after_evaluation(
    context: FileContext,
    analysis: ModeAnalysis,
    report: ModeReport,
    statement: cst.CSTNode,
    start: cst.CSTNode,
    code: str,
) -> Edit | None:
    """The edit that puts `code` where the evaluation or save that begins at `start` ends."""
    last = statement
    if _mode_call(start, "eval") and call_statement(context, start) is statement:  # type: ignore[arg-type]
        model = dotted_name(start.func.value)  # type: ignore[attr-defined]
        body, position = context.index.block.get(statement, ((), 0))
        later = body[position + 1 :]
        for candidate in later:
            if _trained_by(context, analysis, candidate) == model:
                return insert_after(context, candidate, code)
        if not later:
            return None  # model.eval() ends its block: the evaluation happens elsewhere
        last = later[-1]
    if not _exits(last):
        return insert_after(context, last, code)
    # before a return: only where the returned value does not run the model
    if last is statement or set(chains(last)) & report.models:
        return None
    return insert_before(context, last, code)


def _trained_by(context: FileContext, analysis: ModeAnalysis, statement: cst.CSTNode) -> str | None:
    """`model` for a line that is nothing but `model.train()`, else None."""
    for site in analysis.calls_by_statement.get(statement, []):
        if _mode_call(site.node, "train") and call_statement(context, site.node) is statement:
            return dotted_name(site.node.func.value)  # type: ignore[attr-defined]
    return None


def _name_in(analysis: ModeAnalysis, key: Key, function: Function | None) -> str | None:
    """How code in `function` names the optimizer `key`: as the function's own step/train/eval calls
    or its construction do, else as another method of its class does (`self.optimizer`), else a
    module-level name the function does not rebind. None when nothing in the file names it so."""
    index = analysis.context.index
    named: list[tuple[str | None, Function | None]] = [
        (dotted_name(analysis.receiver_expressions[call]), analysis.function_of.get(call))
        for call, (receiver_key, optimizers) in analysis.receivers.items()
        # eval() on what may be another optimizer could raise
        if receiver_key & key and optimizers.certain
    ]
    for call in key:
        construction = analysis.sites[call]
        statement = construction.where.statement
        if isinstance(statement, cst.SimpleStatementLine) and isinstance(statement.body[0], cst.Assign):
            assign = statement.body[0]
            if assign.value is call:
                named += [(dotted_name(t.target), construction.where.function) for t in assign.targets]
    found: dict[int, set[str]] = {}
    for name, where in named:
        if name is None:
            continue
        if where is function:
            found.setdefault(0, set()).add(name)
        elif function and where and function.class_name and where.class_name == function.class_name:
            if name.startswith("self."):
                found.setdefault(1, set()).add(name)
        elif where is None and function is not None:
            root = name.split(".")[0]
            if root not in function.params and (function, root) not in index.bindings:
                found.setdefault(2, set()).add(name)
    best = found[min(found)] if found else set()
    return next(iter(best)) if len(best) == 1 else None


def _innermost_loop(context: FileContext, statement: cst.CSTNode) -> cst.For | cst.While | None:
    for enclosing in context.index.enclosing_statements(statement):
        if isinstance(enclosing, (cst.For, cst.While)):
            return enclosing
        if isinstance(enclosing, (cst.FunctionDef, cst.ClassDef)):
            return None
    return None


def _runs_inside(analysis: ModeAnalysis, call: cst.Call, loop: cst.CSTNode, seen: frozenset[Function]) -> bool:
    """The call is in the loop, or in a function called (at any depth) from the loop."""
    index = analysis.context.index
    site = index.site_of[call]
    if index.within(site.statement, loop):
        return True
    function = site.function
    if function is None or function in seen:
        return False
    return any(_runs_inside(analysis, caller.node, loop, seen | {function}) for caller in analysis.callers.get(function, []))


def _before_in_loop(analysis: ModeAnalysis, call: cst.Call, step: cst.Call, loop: cst.CSTNode) -> bool:
    """The call is in the loop, before the step in source order (it reaches it in the same iteration)."""
    index = analysis.context.index
    return index.within(index.site_of[call].statement, loop) and analysis.order[call] < analysis.order[step]


def _holds(context: FileContext, name: str, key: Key, statement: cst.CSTNode, function: Function | None) -> bool:
    """Whether `name` may hold the optimizers of `key` at `statement` (not a rebound name)."""
    where = Where(statement, function)
    held = {site.call for site in context.evaluator.optimizers(cst.parse_expression(name), where).sites}
    return key <= held


def _mode_call(node: cst.CSTNode, method: str) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == method


def _exits(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(isinstance(s, EXITS) for s in statement.body)


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )
