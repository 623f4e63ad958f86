"""One cheap pass over a module that records what the rules ask about.

Full libcst metadata (scopes, qualified names, positions) costs several times the parse, so the
index keeps only what the rules need: imports (for qualified names), calls, assignments with the
statement they sit in, functions with their parameters and returns, and `self.x` assignments.
Positions are computed later, and only for files that have something to report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from functools import cache, cached_property
from operator import attrgetter
from typing import Any

import libcst as cst

COMPOUND = (
    cst.If,
    cst.For,
    cst.While,
    cst.With,
    cst.Try,
    cst.FunctionDef,
    cst.ClassDef,
)
STATEMENT_TYPES = frozenset(
    {cst.SimpleStatementLine, cst.If, cst.For, cst.While, cst.With, cst.Try, cst.FunctionDef, cst.ClassDef}
    | ({cst.TryStar} if hasattr(cst, "TryStar") else set())
    | ({cst.Match} if hasattr(cst, "Match") else set())
)


@dataclass(eq=False)
class Function:
    """A function or method; `scope_id` keys its local assignments."""

    node: cst.FunctionDef
    name: str
    class_name: str | None
    params: dict[str, cst.Param]
    parent: Function | None  # the function this one is defined in (closures read its names)
    # (returned expression, its return statement)
    returns: list[tuple[cst.BaseExpression, cst.CSTNode]] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Binding:
    """`name = value` (or one element of a tuple assignment); `order` is source order."""

    value: cst.BaseExpression | Unpacked
    statement: cst.CSTNode
    order: int
    # a binding made by a for loop over `value` rather than to `value` itself
    loop_item: bool = False


@dataclass(frozen=True, eq=False)
class CallSite:
    node: cst.Call
    qualname: str | None  # imports resolved: "torch.optim.lr_scheduler.LambdaLR"
    function: Function | None  # the enclosing function
    statement: cst.CSTNode  # the innermost statement that contains the call
    order: int


@dataclass(frozen=True, eq=False)
class SubscriptWrite:
    """`target[key] = value`, e.g. `group["lr"] = 0` (key "lr") or `REGISTRY[name] = cls` (key None)."""

    target: cst.BaseExpression
    key: str | None
    value: cst.BaseExpression
    function: Function | None
    statement: cst.CSTNode
    order: int


class ModuleIndex:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.imports: dict[str, str] = {}
        self.calls: list[CallSite] = []
        self.subscript_writes: list[SubscriptWrite] = []
        self.functions: list[Function] = []
        self.functions_by_name: dict[str, list[Function]] = {}
        self.function_by_node: dict[cst.FunctionDef, Function] = {}
        # (function or None for module level, name) -> bindings in source order
        self.bindings: dict[tuple[Function | None, str], list[Binding]] = {}
        # (class name, attribute) -> values of `self.attribute = value` in its methods
        self.attributes: dict[tuple[str, str], list[Binding]] = {}
        # class name -> its bases as written, imports resolved (`schedulefree.AdamWScheduleFree`)
        self.class_bases: dict[str, list[str]] = {}
        self.parent_statement: dict[cst.CSTNode, cst.CSTNode | None] = {}
        self.block: dict[cst.CSTNode, tuple[tuple[cst.CSTNode, ...], int]] = {}
        self._statements: list[cst.CSTNode] = []
        self._ancestor_ids: dict[cst.CSTNode, frozenset[int]] = {}
        self._code: dict[cst.CSTNode, str] = {}
        self._functions: list[Function] = []
        self._classes: list[str] = []
        self._order = 0
        self._walk(module)

    # -- traversal -------------------------------------------------------------------------
    # A plain walk over the nodes' fields: libcst's visitor rebuilds every node on the way back up,
    # which costs ~15x more than reading the fields.

    def _walk(self, node: cst.CSTNode) -> None:
        kind = type(node)
        is_statement = kind in STATEMENT_TYPES
        if is_statement:
            self.parent_statement[node] = self._statements[-1] if self._statements else None
            self._statements.append(node)
        handler = _VISITORS.get(kind)
        if handler is not None:
            handler(self, node)
        for name in _child_fields(kind):
            value = getattr(node, name)
            if isinstance(value, cst.CSTNode):
                self._walk(value)
            elif type(value) in (tuple, list):
                for item in value:
                    if isinstance(item, cst.CSTNode):
                        self._walk(item)
        if is_statement:
            self._statements.pop()
        if kind is cst.FunctionDef:
            self._functions.pop()
        elif kind is cst.ClassDef:
            self._classes.pop()

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _record_block(self, body: tuple[cst.CSTNode, ...] | list[cst.CSTNode]) -> None:
        body = tuple(body)
        for position, statement in enumerate(body):
            self.block[statement] = (body, position)

    def _visit_module(self, node: cst.Module) -> None:
        self._record_block(node.body)

    def _visit_indented_block(self, node: cst.IndentedBlock) -> None:
        self._record_block(node.body)

    def _visit_import(self, node: cst.Import) -> None:
        for alias in node.names:
            dotted = _dotted(alias.name)
            if alias.asname is not None:
                self.imports[_dotted(alias.asname.name)] = dotted
            else:
                head = dotted.split(".")[0]
                self.imports[head] = head

    def _visit_import_from(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        base = "." * len(node.relative) + (_dotted(node.module) if node.module is not None else "")
        for alias in node.names:
            name = _dotted(alias.name)
            local = _dotted(alias.asname.name) if alias.asname is not None else name
            # `from . import util` names the sibling module `.util`
            self.imports[local] = f"{base}.{name}" if node.module is not None else f"{base}{name}"

    def _visit_function(self, node: cst.FunctionDef) -> None:
        params = {}
        for param in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
            params[param.name.value] = param
        class_name = self._classes[-1] if self._classes else None
        function = Function(node, node.name.value, class_name, params, self._function)
        self.functions.append(function)
        self.functions_by_name.setdefault(function.name, []).append(function)
        self.function_by_node[node] = function
        self._functions.append(function)

    def _visit_class(self, node: cst.ClassDef) -> None:
        self._classes.append(node.name.value)
        bases = [self.qualname(base.value) for base in node.bases if base.keyword is None]
        self.class_bases[node.name.value] = [base for base in bases if base is not None]

    def _visit_return(self, node: cst.Return) -> None:
        if self._functions and node.value is not None:
            self._functions[-1].returns.append((node.value, self._statements[-1]))

    def _visit_call(self, node: cst.Call) -> None:
        self.calls.append(
            CallSite(node, self.qualname(node.func), self._function, self._statements[-1], self._next_order())
        )

    def _visit_assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def _visit_ann_assign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def _visit_for(self, node: cst.For) -> None:
        self._bind(node.target, node.iter, loop_item=True)

    def _visit_with(self, node: cst.With) -> None:
        for item in node.items:
            if item.asname is not None:
                self._bind(item.asname.name, item.item)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression, loop_item: bool = False) -> None:
        statement = self._statements[-1]
        if isinstance(target, cst.Name):
            binding = Binding(value, statement, self._next_order(), loop_item)
            self.bindings.setdefault((self._function, target.value), []).append(binding)
        elif isinstance(target, (cst.Tuple, cst.List)):
            elements = [e.value for e in target.elements]
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(elements):
                for element, item in zip(elements, value.elements):
                    self._bind(element, item.value, loop_item)
            else:
                for position, element in enumerate(elements):
                    self._bind(element, Unpacked(value, position), loop_item)
        elif (
            isinstance(target, cst.Attribute)
            and isinstance(target.value, cst.Name)
            and target.value.value == "self"
            and self._classes
        ):
            binding = Binding(value, statement, self._next_order(), loop_item)
            self.attributes.setdefault((self._classes[-1], target.attr.value), []).append(binding)
        elif isinstance(target, cst.Subscript):
            self.subscript_writes.append(
                SubscriptWrite(target.value, subscript_key(target), value, self._function, statement, self._next_order())
            )

    @property
    def _function(self) -> Function | None:
        return self._functions[-1] if self._functions else None

    # -- queries ---------------------------------------------------------------------------

    def qualname(self, expression: cst.BaseExpression) -> str | None:
        """`sf.AdamWScheduleFree` -> `schedulefree.AdamWScheduleFree` through the imports."""
        dotted = dotted_name(expression)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.imports.get(head, head)
        return f"{base}.{rest}" if rest else base

    def enclosing_statements(self, statement: cst.CSTNode) -> Iterator[cst.CSTNode]:
        """The statement itself, then each compound statement around it, innermost first."""
        current: cst.CSTNode | None = statement
        while current is not None:
            yield current
            current = self.parent_statement.get(current)

    def function_of(self, statement: cst.CSTNode) -> Function | None:
        for enclosing in self.enclosing_statements(statement):
            if isinstance(enclosing, cst.FunctionDef):
                return self.function_by_node[enclosing]
        return None

    def reaching_bindings(
        self, name: str, statement: cst.CSTNode, function: Function | None
    ) -> tuple[list[Binding], bool]:
        """Bindings of `name` that may reach `statement`, and whether one of them certainly does.

        Walks back through the statements before `statement` in its block, then in each enclosing
        block. A plain assignment before it at the same level ends the search; assignments inside
        an earlier `if`/`for`/`try` are possible values and the search goes on past them.
        Assignments in a branch that does not lead to `statement` are never seen.
        """
        candidates = self.bindings.get((function, name), [])
        if not candidates:
            return [], False
        found: list[Binding] = []
        current: cst.CSTNode | None = statement
        while current is not None and current is not (function.node if function else None):
            parent = self.parent_statement.get(current)
            body, position = self.block.get(current, ((), 0))
            earlier: dict[int, list[Binding]] = {}  # position in the block -> the bindings inside that statement
            for binding in candidates:
                at = self._position_in(binding.statement, body)
                if at is not None and at < position:
                    earlier.setdefault(at, []).append(binding)
            for at in sorted(earlier, reverse=True):
                inside = earlier[at]
                if inside[-1].statement is body[at] and not isinstance(body[at], COMPOUND):
                    return found + [inside[-1]], True
                found.extend(inside)
            # `for x in ...:` binds x for its own body, unless an earlier line of the body rebinds it
            if isinstance(parent, cst.For):
                own = [b for b in candidates if b.statement is parent and b.loop_item]
                if own:
                    return found + own, True
            current = parent
        return found, False

    def _position_in(self, statement: cst.CSTNode, body: tuple[cst.CSTNode, ...]) -> int | None:
        """Where in `body` the statement lies, itself or inside one of body's statements."""
        for enclosing in self.enclosing_statements(statement):
            found = self.block.get(enclosing)
            if found is not None and found[0] is body:
                return found[1]
        return None

    def within(self, statement: cst.CSTNode, ancestor: cst.CSTNode) -> bool:
        return id(ancestor) in self._ancestors(statement)

    def _ancestors(self, statement: cst.CSTNode) -> frozenset[int]:
        """ids of the statement and the statements around it, remembered: flow queries ask often."""
        found = self._ancestor_ids.get(statement)
        if found is None:
            found = self._ancestor_ids[statement] = frozenset(map(id, self.enclosing_statements(statement)))
        return found

    @cached_property
    def calls_by_name(self) -> dict[str, list[CallSite]]:
        """Calls by the last part of what they call: `f(...)` and `self.f(...)` under "f"."""
        found: dict[str, list[CallSite]] = {}
        for site in self.calls:
            func = site.node.func
            name = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None
            if name is not None:
                found.setdefault(name, []).append(site)
        return found

    @cached_property
    def site_of(self) -> dict[cst.Call, CallSite]:
        return {site.node: site for site in self.calls}

    def module_bindings(self, name: str) -> list[Binding]:
        return self.bindings.get((None, name), [])

    def code(self, node: cst.CSTNode) -> str:
        text = self._code.get(node)
        if text is None:
            text = self._code[node] = self.module.code_for_node(node)
        return text


def child_nodes(node: cst.CSTNode, every_field: bool = False) -> Iterator[cst.CSTNode]:
    """The node's children, whitespace and punctuation aside (`every_field`: with them). Reads the
    fields as `ModuleIndex` does: libcst's `children` costs ~15x more."""
    read, single = _field_reader(type(node), every_field)
    if read is None:
        return
    for value in (read(node),) if single else read(node):
        if isinstance(value, cst.CSTNode):
            yield value
        elif type(value) in (tuple, list):
            yield from (item for item in value if isinstance(item, cst.CSTNode))


@cache
def _field_reader(kind: type, every_field: bool) -> tuple[Callable[[cst.CSTNode], Any] | None, bool]:
    """What reads a node kind's fields that may hold nodes (None: none), and whether it reads just one."""
    names = tuple(f.name for f in fields(kind)) if every_field else _child_fields(kind)
    return (attrgetter(*names) if names else None), len(names) == 1


def descendants(node: cst.CSTNode, skipped: frozenset[int] = frozenset()) -> Iterator[cst.CSTNode]:
    """The node and every node below it, leaving out the subtrees whose id() is in `skipped`."""
    pending = [node]
    while pending:
        current = pending.pop()
        if id(current) not in skipped:
            yield current
            pending.extend(child_nodes(current))


@dataclass(frozen=True, eq=False)
class Unpacked:
    """Element `position` of an iterable value that a tuple assignment unpacked."""

    value: cst.BaseExpression
    position: int


def subscript_key(node: cst.Subscript) -> str | None:
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    key = node.slice[0].slice.value
    if isinstance(key, cst.SimpleString):
        return key.evaluated_value if isinstance(key.evaluated_value, str) else None
    return None


def _dotted(node: cst.BaseExpression) -> str:
    dotted = dotted_name(node)
    assert dotted is not None
    return dotted


def dotted_name(node: cst.BaseExpression) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


# Fields that hold only whitespace, comments and punctuation: never walked.
_SKIPPED_FIELDS = ("whitespace", "lpar", "rpar", "comma", "semicolon", "header", "footer", "leading_lines",
                   "lines_after_decorators", "newline", "colon", "equal", "dot", "star", "operator",
                   "asynchronous", "quote")


@cache
def _child_fields(kind: type) -> tuple[str, ...]:
    return tuple(
        f.name for f in fields(kind) if not any(f.name.startswith(s) or f.name.endswith(s) for s in _SKIPPED_FIELDS)
    )


_VISITORS = {
    cst.Module: ModuleIndex._visit_module,
    cst.IndentedBlock: ModuleIndex._visit_indented_block,
    cst.Import: ModuleIndex._visit_import,
    cst.ImportFrom: ModuleIndex._visit_import_from,
    cst.FunctionDef: ModuleIndex._visit_function,
    cst.ClassDef: ModuleIndex._visit_class,
    cst.Return: ModuleIndex._visit_return,
    cst.Call: ModuleIndex._visit_call,
    cst.Assign: ModuleIndex._visit_assign,
    cst.AnnAssign: ModuleIndex._visit_ann_assign,
    cst.For: ModuleIndex._visit_for,
    cst.With: ModuleIndex._visit_with,
}
