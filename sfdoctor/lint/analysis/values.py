"""What an expression may evaluate to, and which optimizer a name holds.

Values are followed through assignments (flow-aware, see `ModuleIndex.reaching_bindings`), tuple
unpacking, dict configs (`cfg["lr"]`, `cfg.get("lr", d)`), argparse defaults (`args.lr`), keyword
defaults and call-site arguments of the enclosing function, and `self.x` across a class's methods.
Where a path leads to something unknown the result is marked incomplete: rules then say
"possible" or stay silent.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import libcst as cst

from ..project.configs import configured_factories
from ..project.facts import Built, Helper, parameter_of
from ..project.view import ProjectView
from .index import Binding, Function, ModuleIndex, Unpacked, dotted_name, subscript_key

MAX_DEPTH = 12
MAX_OPTIONS = 32

SF_CLASSES = frozenset(
    {
        "AdamWScheduleFree",
        "AdamWScheduleFreeClosure",
        "AdamWScheduleFreeReference",
        "AdamWScheduleFreePaper",
        "SGDScheduleFree",
        "SGDScheduleFreeClosure",
        "SGDScheduleFreeReference",
        "RAdamScheduleFree",
        "RAdamScheduleFreeClosure",
        "AdamCScheduleFreePlusPaper",
        "ScheduleFreeWrapper",
        "ScheduleFreeWrapperReference",
    }
)
# Look-alikes of other libraries: they keep y/x/z and need train()/eval() (the mode rules apply), but
# start in train mode; their lr behaviour is not verified, so the lr rules leave them alone. Checked on
# CPU: pytorch_optimizer 4.1.0 and heavyball 3.2.1 step silently in eval mode, prodigy-plus-schedule-free
# 2.0.1 raises "Not in train mode!".
LOOKALIKE_CLASSES = frozenset(
    {"ScheduleFreeAdamW", "ScheduleFreeSGD", "ScheduleFreeRAdam", "ProdigyPlusScheduleFree", "SFAdamW",
     "ForeachSFAdamW", "PaLMForeachSFAdamW"}
)
WRAPPER_CLASSES = frozenset({"ScheduleFreeWrapper", "ScheduleFreeWrapperReference"})
# Constructor parameters in order (schedulefree 1.4.1); vendored copies share the names.
_ADAMW = ("params", "lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power", "foreach")
_SGD = ("params", "lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power", "foreach")
_RADAM = ("params", "lr", "betas", "eps", "weight_decay", "r", "weight_lr_power", "foreach", "silent_sgd_phase")
# ScheduleFree+ (upstream git head after 1.4.1): `betas` are Adam's inner moments, x is stored, no warmup_steps.
ADAMC = "AdamCScheduleFreePlusPaper"
_ADAMC = (
    "params", "lr", "betas", "sf_beta1", "eps", "weight_decay", "r", "polyak_beta", "c_warmup",
    "sf_beta1_anneal_steps", "sf_beta1_max", "weight_lr_power",
)
SIGNATURES = {
    "AdamWScheduleFree": _ADAMW,
    "AdamWScheduleFreeClosure": _ADAMW,
    "AdamWScheduleFreePaper": _ADAMW,
    "AdamWScheduleFreeReference": _ADAMW,
    ADAMC: _ADAMC,
    **dict.fromkeys(LOOKALIKE_CLASSES, ("params", "lr")),
    "SGDScheduleFree": _SGD,
    "SGDScheduleFreeReference": _SGD,
    "SGDScheduleFreeClosure": ("params", "lr", "weight_decay", "momentum", "warmup_steps", "r", "weight_lr_power"),
    "RAdamScheduleFree": _RADAM,
    "RAdamScheduleFreeClosure": _RADAM,
    "ScheduleFreeWrapper": ("base", "weight_decay_at_y", "momentum", "weight_lr_power", "r"),
    "ScheduleFreeWrapperReference": ("base", "momentum", "weight_decay_at_y", "r", "weight_lr_power"),
}
CONFIG = "a config"  # the factory of an optimizer built from a config
# Functions that build an object from a config (Hydra, OmegaConf).
CONFIG_BUILDERS = frozenset({"instantiate", "get_class", "call"})
# Functions that hand back the optimizer they are given.
PASS_THROUGH = frozenset({"prepare", "prepare_optimizer"})


@dataclass(frozen=True)
class Values:
    """The values an expression may take; `complete` is False when some path is unknown."""

    options: tuple[Any, ...] = ()
    complete: bool = False

    def triggers(self, predicate: Callable[[Any], bool]) -> tuple[bool, bool]:
        """(fires, certain): fires when some option satisfies `predicate`, certain when all do."""
        hits = [option for option in self.options if _safe(predicate, option)]
        return bool(hits), bool(hits) and self.complete and len(hits) == len(self.options)

    @property
    def single(self) -> Any:
        """The value when there is exactly one and nothing unknown, else None."""
        if self.complete and len(set(map(repr, self.options))) == 1:
            return self.options[0]
        return None


UNKNOWN = Values()


def _safe(predicate: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(predicate(value))
    except (TypeError, ValueError, ArithmeticError):
        return False


def merge(results: Iterable[Values]) -> Values:
    options: list[Any] = []
    complete = True
    for result in results:
        complete &= result.complete
        options.extend(o for o in result.options if o not in options)
    return Values(tuple(options[:MAX_OPTIONS]), complete and len(options) <= MAX_OPTIONS)


@dataclass(frozen=True)
class Where:
    """The place an expression is evaluated: its statement and enclosing function."""

    statement: cst.CSTNode
    function: Function | None


@dataclass(frozen=True)
class OptimizerSite:
    """A ScheduleFree optimizer's construction, or a call of a factory that returns one."""

    # or the parameter (cst.Param) another module hands the optimizer to, or the LightningModule (cst.ClassDef)
    # whose configure_optimizers, its own or a base class's, returns it
    call: cst.Call
    class_name: str
    where: Where
    possible: bool = False  # the call builds one only on some paths (a flag, a registry, a name)
    condition: str | None = None  # what selects it, for messages
    built: Built | None = None  # made by a project factory, not by `call` itself
    factory: str | None = None  # the configured or project factory `call` calls

    def argument(self, name: str) -> cst.BaseExpression | None:
        """A constructor argument by name, given by keyword or by its position in the signature."""
        if self.factory is not None:
            return None  # the call's arguments are the factory's, not the optimizer's
        names = SIGNATURES.get(self.class_name, ())
        return Evaluator.argument(self.call, name, names.index(name) if name in names else None)

    def params_argument(self) -> cst.BaseExpression | None:
        """The expression the optimizer's parameters come from."""
        if not isinstance(self.call, cst.Call):
            return None  # a parameter another module hands the optimizer to
        if self.built is not None:
            position, keyword = self.built.params or (None, None)
            return Evaluator.argument(self.call, keyword or "", position) if self.built.params else None
        return self.argument("params") or self.argument("base")

    @property
    def initial_mode(self) -> str:
        if self.built is not None and self.built.mode is not None:
            return self.built.mode
        return "train" if self.class_name == "SGDScheduleFreeReference" or self.is_lookalike else "eval"

    @property
    def is_wrapper(self) -> bool:
        return self.class_name in WRAPPER_CLASSES

    @property
    def is_closure(self) -> bool:
        return self.class_name.endswith("Closure")

    @property
    def is_lookalike(self) -> bool:
        return self.class_name in LOOKALIKE_CLASSES

    @property
    def is_adamc(self) -> bool:
        """ScheduleFree+: x is stored, so lr 0 and betas[0] 0 cannot break the average."""
        return self.class_name == ADAMC


@dataclass(frozen=True)
class Optimizers:
    """Which ScheduleFree constructions an expression may hold."""

    sites: tuple[OptimizerSite, ...] = ()
    certain: bool = False  # every path leads to a ScheduleFree optimizer


_BINARY = {
    cst.Add: operator.add,
    cst.Subtract: operator.sub,
    cst.Multiply: operator.mul,
    cst.Divide: operator.truediv,
    cst.FloorDivide: operator.floordiv,
    cst.Power: operator.pow,
    cst.Modulo: operator.mod,
}


# Constant arithmetic stays cheap: results beyond these sizes are unknown (`10 ** 10 ** 10`, `"a" * 10 ** 10`).
MAX_INT_BITS = 4096
MAX_LENGTH = 100_000
_SEQUENCES = (str, bytes, tuple, list)


def bounded(function: Callable, *args: Any) -> Any:
    """`function(*args)`, or OverflowError where computing it or its result would be too large."""
    if function is operator.pow and all(type(a) is int for a in args):
        base, exponent = args
        if exponent > 0 and abs(base) > 1 and exponent * abs(base).bit_length() > MAX_INT_BITS:
            raise OverflowError("too large to evaluate")
    elif function is operator.mul and len(args) == 2:
        sequence, count = args if isinstance(args[0], _SEQUENCES) else reversed(args)
        if isinstance(sequence, _SEQUENCES) and isinstance(count, int) and len(sequence) * count > MAX_LENGTH:
            raise OverflowError("too large to evaluate")
    elif function is operator.mod and isinstance(args[0], (str, bytes)):
        raise OverflowError("%-formatting is not evaluated")  # "%0999999999d" % 1 is a gigabyte
    result = function(*args)
    if (type(result) is int and result.bit_length() > MAX_INT_BITS) or (
        isinstance(result, _SEQUENCES) and len(result) > MAX_LENGTH
    ):
        raise OverflowError("too large to evaluate")
    return result


class Evaluator:
    def __init__(
        self,
        index: ModuleIndex,
        factories: frozenset[str] = frozenset(),
        project: ProjectView | None = None,
        filename: str = "",
    ) -> None:
        self.index = index
        self.factories = configured_factories(factories)
        self.project = project
        self.filename = filename
        self._optimizers: dict[tuple[object, Where], Optimizers | None] = {}
        self._passed: dict[Function, dict[str, OptimizerSite]] = {}
        self._origins: dict[tuple[cst.BaseExpression, Where], tuple[list[tuple[cst.BaseExpression, Where]], bool]] = {}
        self._name_memo: dict[tuple[str, Where], Values] = {}

    # -- values ------------------------------------------------------------------------------

    def values(self, node: cst.BaseExpression | Unpacked, where: Where, depth: int = 0) -> Values:
        if depth > MAX_DEPTH:
            return UNKNOWN
        depth += 1
        if isinstance(node, Unpacked):
            return self._unpacked_values(node, where, depth)
        if isinstance(node, (cst.Integer, cst.Float)):
            return Values((ast.literal_eval(node.value),), True)
        if isinstance(node, cst.SimpleString):
            return Values((node.evaluated_value,), True)
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None"):
                return Values(({"True": True, "False": False, "None": None}[node.value],), True)
            return self._name_values(node.value, where, depth)
        if isinstance(node, cst.UnaryOperation):
            inner = self.values(node.expression, where, depth)
            unary = {cst.Minus: operator.neg, cst.Plus: operator.pos, cst.Not: operator.not_}
            return self._apply(unary.get(type(node.operator)), [inner])
        if isinstance(node, cst.BinaryOperation):
            function = _BINARY.get(type(node.operator))
            return self._apply(function, [self.values(node.left, where, depth), self.values(node.right, where, depth)])
        if isinstance(node, cst.IfExp):
            return merge([self.values(node.body, where, depth), self.values(node.orelse, where, depth)])
        if isinstance(node, (cst.Tuple, cst.List)):
            parts = [self.values(e.value, where, depth) for e in node.elements if isinstance(e, cst.Element)]
            return self._apply(lambda *items: tuple(items), parts)
        if isinstance(node, cst.Subscript):
            return self._subscript_values(node, where, depth)
        if isinstance(node, cst.Attribute):
            return self._attribute_values(node, where, depth)
        if isinstance(node, cst.Call):
            return self._call_values(node, where, depth)
        return UNKNOWN

    def _apply(self, function: Callable | None, parts: list[Values]) -> Values:
        if function is None or not all(p.options for p in parts):
            return UNKNOWN
        results = []
        for combination in itertools.islice(itertools.product(*(p.options for p in parts)), MAX_OPTIONS):
            try:
                results.append(bounded(function, *combination))
            except (TypeError, ValueError, ArithmeticError, OverflowError):
                return UNKNOWN
        return Values(tuple(results), all(p.complete for p in parts))

    def _name_values(self, name: str, where: Where, depth: int) -> Values:
        """Remembered per (name, place), as `origins` is: a recursive function's parameters reach its own calls."""
        key = (name, where)
        if key not in self._name_memo:
            self._name_memo[key] = UNKNOWN  # a cycle back to this name adds nothing
            self._name_memo[key] = merge(
                self.values(b.value, w, depth) if b else UNKNOWN for b, w in self.bindings(name, where)
            )
        return self._name_memo[key]

    def bindings(self, name: str, where: Where) -> list[tuple[Binding | None, Where]]:
        """Reaching bindings of `name` with the place each was evaluated; None marks unknown."""
        found, certain = self.index.reaching_bindings(name, where.statement, where.function)
        # a loop variable takes the items of its iterable: not followed
        result = [(None if b.loop_item else b, Where(b.statement, where.function)) for b in found]
        if certain:
            return result
        function = where.function
        if function is not None and name in function.params:
            return result + self._parameter_bindings(function, name)
        if function is not None and function.parent is not None:
            return result + self.bindings(name, Where(function.node, function.parent))
        if function is not None:
            module_level = [(b, Where(b.statement, None)) for b in self.index.module_bindings(name)]
            return result + (module_level or [(None, where)])
        return result + [(None, where)]

    def _parameter_bindings(self, function: Function, name: str) -> list[tuple[Binding | None, Where]]:
        """A parameter takes its call sites' arguments, or its default where a call leaves it out."""
        param = function.params[name]
        default = [(Binding(param.default, function.node, 0), Where(function.node, None))] if param.default else []
        sites = [c for c in self.index.calls_by_name.get(function.name, []) if self._calls_function(c.node, function)]
        if not sites:
            return default or [(None, Where(function.node, function))]
        result: list[tuple[Binding | None, Where]] = []
        for site in sites:
            argument = self.argument(site.node, name, self._position(function, name))
            if argument is None:
                result += default or [(None, Where(site.statement, site.function))]
            else:
                result.append((Binding(argument, site.statement, site.order), Where(site.statement, site.function)))
        return result

    @staticmethod
    def _position(function: Function, name: str) -> int | None:
        names = [p for p in function.params if not (function.class_name and p in ("self", "cls"))]
        return names.index(name) if name in names else None

    @staticmethod
    def _calls_function(call: cst.Call, function: Function) -> bool:
        func = call.func
        if isinstance(func, cst.Name):
            return func.value == function.name and function.class_name is None
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value == function.name
            and function.class_name is not None
            and isinstance(func.value, cst.Name)
            and func.value.value == "self"
        )

    def _unpacked_values(self, node: Unpacked, where: Where, depth: int) -> Values:
        whole = self.values(node.value, where, depth)
        return self._apply(lambda value: value[node.position], [whole])

    def origins(
        self, node: cst.BaseExpression, where: Where, depth: int = 0
    ) -> tuple[list[tuple[cst.BaseExpression, Where]], bool]:
        """The expressions a name stands for, through assignments; False when some path is unknown.
        Remembered per (expression, place): a recursive function's parameters reach its own call sites, and
        following them again at each level of the depth limit multiplies the work (and the list) by their number."""
        if depth > MAX_DEPTH:
            return [], False
        key = (node, where)
        if key not in self._origins:
            self._origins[key] = [], False  # a cycle back to this expression adds nothing
            self._origins[key] = self._find_origins(node, where, depth)
        return self._origins[key]

    def _find_origins(
        self, node: cst.BaseExpression, where: Where, depth: int
    ) -> tuple[list[tuple[cst.BaseExpression, Where]], bool]:
        if isinstance(node, cst.Subscript) and (key := subscript_key(node)) is not None:
            literals, complete = self.dict_literals(node.value, where, depth + 1)
            found = []
            for literal, place in literals:
                value = dict(_dict_entries(literal)).get(key)
                if value is None:
                    complete = False
                    continue
                more, whole = self.origins(value, place, depth + 1)
                found += more
                complete &= whole
            return (found, complete) if literals else ([(node, where)], True)
        if not isinstance(node, cst.Name) or node.value in ("True", "False", "None"):
            return [(node, where)], True
        found: list[tuple[cst.BaseExpression, Where]] = []
        complete = True
        for binding, place in self.bindings(node.value, where):
            if binding is None or isinstance(binding.value, Unpacked):
                complete = False
                continue
            more, whole = self.origins(binding.value, place, depth + 1)
            found += more
            complete &= whole
        return found, complete and bool(found)

    def dict_literals(
        self, node: cst.BaseExpression, where: Where, depth: int = 0
    ) -> tuple[list[tuple[cst.BaseExpression, Where]], bool]:
        """The dict literals (or `dict(...)` calls) an expression may be, and whether that is all."""
        if depth > MAX_DEPTH:
            return [], False
        depth += 1
        found: list[tuple[cst.BaseExpression, Where]] = []
        # the depth goes on through origins: a recursive helper would otherwise recurse without end
        origins, complete = self.origins(node, where, depth)
        for origin, place in origins:
            if isinstance(origin, cst.Dict) or (
                isinstance(origin, cst.Call) and self.index.qualname(origin.func) == "dict"
            ):
                found.append((origin, place))
            elif isinstance(origin, cst.Subscript) and subscript_key(origin) is None:
                # CONFIGS[flag]: any of the dict's values (origins already followed string keys)
                outer, outer_complete = self.dict_literals(origin.value, place, depth)
                complete &= outer_complete
                for literal, literal_place in outer:
                    for _, value in _dict_entries(literal):
                        inner, inner_complete = self.dict_literals(value, literal_place, depth)
                        found += inner
                        complete &= inner_complete
            else:
                complete = False
        return found, complete and bool(found)

    def _subscript_values(self, node: cst.Subscript, where: Where, depth: int) -> Values:
        key = subscript_key(node)
        if key is None:
            return UNKNOWN
        return self._key_values(node.value, key, None, where, depth)

    def _key_values(
        self, mapping: cst.BaseExpression, key: str, default: cst.BaseExpression | None, where: Where, depth: int
    ) -> Values:
        literals, complete = self.dict_literals(mapping, where, depth)
        results = []
        for literal, place in literals:
            entries = dict(_dict_entries(literal))
            if key in entries:
                results.append(self.values(entries[key], place, depth))
            elif default is not None:
                results.append(self.values(default, where, depth))
            else:
                complete = False
        merged = merge(results)
        return Values(merged.options, merged.complete and complete and bool(literals))

    def _attribute_values(self, node: cst.Attribute, where: Where, depth: int) -> Values:
        attribute = node.attr.value
        if isinstance(node.value, cst.Name) and node.value.value == "self" and where.function:
            return self._self_attribute_values(attribute, where, depth)
        if self._is_parsed_args(node.value, where, depth):
            return self._argparse_default(attribute, depth)
        return UNKNOWN

    def _self_attribute_values(self, attribute: str, where: Where, depth: int) -> Values:
        class_name = where.function.class_name if where.function else None
        bindings = self.index.attributes.get((class_name, attribute), [])
        if not bindings:
            return UNKNOWN
        return merge(
            self.values(b.value, Where(b.statement, self.index.function_of(b.statement)), depth) for b in bindings
        )

    def _is_parsed_args(self, node: cst.BaseExpression, where: Where, depth: int) -> bool:
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("parse_args", "parse_known_args"):
                return True
            # `args = parse_args()`: a helper of this module that returns `parser.parse_args()`
            returns = self._local_returns(node, where)
            return bool(returns) and all(self._is_parsed_args(value, place, depth + 1) for value, place in returns)
        if isinstance(node, cst.Name):
            bindings = self.bindings(node.value, where)
            return bool(bindings) and all(
                b is not None
                and (
                    self._is_parsed_args(b.value, w, depth + 1)
                    if not isinstance(b.value, Unpacked)
                    else self._is_parsed_args(b.value.value, w, depth + 1) and b.value.position == 0
                )
                for b, w in bindings
            )
        return False

    def _argparse_default(self, dest: str, depth: int) -> Values:
        for site in self.index.calls:
            call = site.node
            if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument"):
                continue
            if _argparse_dest(call) != dest:
                continue
            default = self.argument(call, "default", None)
            where = Where(site.statement, site.function)
            return self.values(default, where, depth) if default is not None else Values((None,), True)
        return UNKNOWN

    def _call_values(self, node: cst.Call, where: Where, depth: int) -> Values:
        qualname = self.index.qualname(node.func) or ""
        if qualname in ("float", "int") and node.args:
            return self._apply(float if qualname == "float" else int, [self.values(node.args[0].value, where, depth)])
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "get" and node.args:
            key = self.values(node.args[0].value, where, depth).single
            default = node.args[1].value if len(node.args) > 1 else cst.Name("None")
            if isinstance(key, str):
                return self._key_values(node.func.value, key, default, where, depth)
        return UNKNOWN

    # -- arguments ---------------------------------------------------------------------------

    @staticmethod
    def argument(call: cst.Call, keyword: str, position: int | None) -> cst.BaseExpression | None:
        """An argument by keyword, or by position among the positional arguments."""
        positional: list[cst.BaseExpression] = []
        starred = False  # after `*args` the positions are unknown
        for arg in call.args:
            if arg.keyword is not None:
                if arg.keyword.value == keyword:
                    return arg.value
            elif arg.star:
                starred = True
            elif not starred:
                positional.append(arg.value)
        if position is not None and position < len(positional):
            return positional[position]
        return None

    # -- optimizers --------------------------------------------------------------------------

    def optimizers(self, node: cst.BaseExpression | Unpacked, where: Where, depth: int = 0) -> Optimizers:
        """The ScheduleFree constructions that `node` may hold, remembered per (expression, place):
        helpers returning each other's results would otherwise be followed exponentially often."""
        memo = (node, where)
        if memo in self._optimizers:
            return self._optimizers[memo] or Optimizers()  # None: being computed (recursion)
        if depth > MAX_DEPTH:
            return Optimizers()
        self._optimizers[memo] = None
        found = self._optimizers[memo] = self._find_optimizers(node, where, depth + 1)
        return found

    def _find_optimizers(self, node: cst.BaseExpression | Unpacked, where: Where, depth: int) -> Optimizers:
        if isinstance(node, Unpacked):
            return self._unpacked_optimizers(node, where, depth)
        if isinstance(node, cst.Call):
            return self._call_optimizers(node, where, depth)
        if isinstance(node, cst.Name):
            found = self._combine(
                [self.optimizers(b.value, w, depth) if b is not None else Optimizers() for b, w in
                 self._optimizer_bindings(node.value, where)]
            )
            passed = self.passed_in(where.function).get(node.value) if where.function else None
            return Optimizers(found.sites + (passed,), found.certain and not passed.possible) if passed else found
        part = _part_of_result(node)
        if part is not None:  # `build(...)["optimizer"]`, `result.optimizer` where `result = build(...)`
            return self._combine(
                [self._from_factory(call, place, built) for call, place in self._calls_of(part[0], where)
                 if (built := self._project_built(call, (part[1],)))]
            )
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
            class_name = where.function.class_name if where.function else None
            bindings = self.index.attributes.get((class_name, node.attr.value), [])
            return self._combine(
                [self.optimizers(b.value, Where(b.statement, self.index.function_of(b.statement)), depth)
                 for b in bindings]
            )
        return Optimizers()

    def _optimizer_bindings(self, name: str, where: Where) -> list[tuple[Binding | None, Where]]:
        function = where.function
        if function is not None and name in function.params:
            annotation = function.params[name].annotation
            if annotation is not None and last_name(annotation.annotation) in SF_CLASSES:
                # an annotated parameter: trust the annotation for mode and scheduler rules
                return [(Binding(annotation.annotation, function.node, 0), where)]
        return self.bindings(name, where)

    def _call_optimizers(self, node: cst.Call, where: Where, depth: int) -> Optimizers:
        site = self.construction(node, where, depth)
        if site is not None:
            return Optimizers((site,), not site.possible)
        name = last_name(node.func)
        if name in PASS_THROUGH and len(node.args) == 1:
            return self.optimizers(node.args[0].value, where, depth)
        returns = self._local_returns(node, where)
        if returns:
            return self._combine([self.optimizers(value, place, depth) for value, place in returns])
        return Optimizers()

    def _unpacked_optimizers(self, node: Unpacked, where: Where, depth: int) -> Optimizers:
        value = node.value
        if isinstance(value, cst.Call):
            if last_name(value.func) in PASS_THROUGH and node.position < len(value.args):
                return self.optimizers(value.args[node.position].value, where, depth)
            built = self._project_built(value, (node.position,))
            if built:
                return self._from_factory(value, where, built)
            qualname = self.index.qualname(value.func)
            if qualname in self.factories and self.factories[qualname] == node.position:
                return Optimizers((OptimizerSite(value, last_name(value.func) or qualname, where, factory=qualname),), True)
            results = []
            for returned, place in self._local_returns(value, where):
                if isinstance(returned, (cst.Tuple, cst.List)) and node.position < len(returned.elements):
                    results.append(self.optimizers(returned.elements[node.position].value, place, depth))
                else:
                    results.append(self.optimizers(Unpacked(returned, node.position), place, depth))
            return self._combine(results)
        if isinstance(value, cst.Name):
            return self._combine(
                [self.optimizers(Unpacked(b.value, node.position), w, depth) if b is not None and not isinstance(b.value, Unpacked) else Optimizers()
                 for b, w in self.bindings(value.value, where)]
            )
        return Optimizers()

    def construction(
        self, call: cst.Call, where: Where, depth: int = 0, anywhere: bool = False
    ) -> OptimizerSite | None:
        """The ScheduleFree optimizer `call` builds: its class (however imported, a subclass, a class
        chosen into a variable, a dict or by name), a configured factory, or a project factory
        (`anywhere`: also one that returns it inside a tuple or dict)."""
        qualname = self.index.qualname(call.func) or ""
        name = last_name(call.func)
        if name in SF_CLASSES or qualname.rsplit(".", 1)[-1] in SF_CLASSES or name in self.schedulefree_subclasses:
            return OptimizerSite(call, name if name in SF_CLASSES else qualname.rsplit(".", 1)[-1], where)
        if name in LOOKALIKE_CLASSES:
            return OptimizerSite(call, name, where)
        if qualname in self.factories and (anywhere or self.factories[qualname] is None):
            return OptimizerSite(call, name or qualname, where, factory=qualname)
        built = self._project_built(call, None if anywhere else ())
        if built:
            return self._from_factory(call, where, built).sites[0]
        classes, certain = self.classes(call.func, where, depth)
        if classes:
            return OptimizerSite(call, classes[0], where, possible=not certain)
        return self._from_config(call, where)

    def _from_config(self, call: cst.Call, where: Where) -> OptimizerSite | None:
        """`instantiate(cfg.optimizer, params)` / `get_class(cfg.optim._target_)(...)` in a project
        whose configs name a ScheduleFree optimizer: possibly one."""
        if self.project is None or not self.project.configured:
            return None
        func = call.func.func if isinstance(call.func, cst.Call) else call.func
        args = call.func.args if isinstance(call.func, cst.Call) else call.args
        if last_name(func) not in CONFIG_BUILDERS or not any("optim" in self.index.code(a.value) for a in args[:1]):
            return None
        name, filename, row = self.project.configured[0]
        return OptimizerSite(call, name, where, possible=True, condition=f"{filename}:{row} names {name}", factory=CONFIG)

    def classes(self, node: cst.BaseExpression, where: Where, depth: int = 0) -> tuple[list[str], bool]:
        """The ScheduleFree classes an expression may name (`optimizer_class`, `OPTIMIZERS[name]`,
        `getattr(schedulefree, name)`), and whether every path names one."""
        if depth > MAX_DEPTH or isinstance(node, cst.Call) and not _is_getattr(node):
            return [], False
        if isinstance(node, cst.Call):  # getattr(module, name)
            module = self.index.qualname(node.args[0].value) if node.args else None
            return (["ScheduleFree class chosen by name"], False) if module == "schedulefree" else ([], False)
        origins, complete = self.origins(node, where, depth + 1)
        found: list[str] = []
        every = complete
        for origin, place in origins:
            if isinstance(origin, cst.Subscript) and subscript_key(origin) is None:
                literals, _ = self.dict_literals(origin.value, place, depth + 1)
                names = [last_name(v) for literal, _ in literals for _, v in _dict_entries(literal)]
                names += [last_name(e.value) for literal, _ in self.origins(origin.value, place, depth + 1)[0]
                          if isinstance(literal, (cst.List, cst.Tuple)) for e in literal.elements]
                names += self._registered(origin.value)
                hits = [n for n in names if n in SF_CLASSES or n in self.schedulefree_subclasses]
                found += hits
                every &= bool(hits) and len(hits) == len(names)
                continue
            if isinstance(origin, cst.Call) and _is_getattr(origin):
                more, _ = self.classes(origin, place, depth + 1)
                found += more
                every = False
                continue
            qualname = self.index.qualname(origin) if isinstance(origin, (cst.Name, cst.Attribute)) else None
            short = (qualname or "").rsplit(".", 1)[-1]
            if origin is node or short not in SF_CLASSES:
                every = False
                continue
            found.append(short)
        return found, every and bool(found)

    def _registered(self, registry: cst.BaseExpression) -> list[str | None]:
        """The classes put into a registry dict with `REGISTRY[key] = cls`: directly, or by a decorator
        that does it with its argument (`@register("sf_adamw") class SFAdamW(AdamWScheduleFree)`)."""
        text = dotted_name(registry)
        found: list[str | None] = []
        for write in self.index.subscript_writes:
            if text is None or dotted_name(write.target) != text:
                continue
            function = write.function
            if isinstance(write.value, cst.Name) and function is not None and write.value.value in function.params:
                found += self._decorated(function)
            else:
                found.append(last_name(write.value))
        return found

    def _decorated(self, decorator: Function) -> list[str | None]:
        """The classes handed to a decorator: `@decorator` or `@factory(...)` (a function returning it)
        on a class, and the calls `decorator(cls)` / `factory(...)(cls)`."""
        parent = decorator.parent
        factory = parent.name if parent and any(dotted_name(v) == decorator.name for v, _ in parent.returns) else None

        def applies(expression: cst.BaseExpression) -> bool:
            if isinstance(expression, cst.Call):
                return factory is not None and last_name(expression.func) == factory
            return last_name(expression) == decorator.name

        found: list[str | None] = [
            statement.name.value
            for statement in self.index.parent_statement
            if isinstance(statement, cst.ClassDef) and any(applies(d.decorator) for d in statement.decorators)
        ]
        found += [last_name(site.node.args[0].value) for site in self.index.calls if site.node.args and applies(site.node.func)]
        return found

    @cached_property
    def schedulefree_subclasses(self) -> frozenset[str]:
        """Classes of this module that subclass a ScheduleFree class."""
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, bases in self.index.class_bases.items():
                if name not in found and any(b.rsplit(".", 1)[-1] in SF_CLASSES | found for b in bases):
                    found.add(name)
                    changed = True
        return frozenset(found)

    def passed_in(self, function: Function) -> dict[str, OptimizerSite]:
        """Parameters of `function` that another module of the project hands a ScheduleFree optimizer
        (`get_swa(args, model, optimizer)` in the training script), each standing for its optimizer."""
        if function in self._passed:
            return self._passed[function]
        found: dict[str, OptimizerSite] = {}
        if self.project is not None and function.parent is None:
            name = f"{function.class_name}.{function.name}" if function.class_name else function.name
            names = [p for p in function.params if not (function.class_name and p in ("self", "cls"))]
            for passed in self.project.passed_to(self.filename, name):
                parameter = parameter_of(passed.keyword, passed.position, names)
                if parameter in function.params and parameter not in found:
                    built = passed.built
                    found[parameter] = OptimizerSite(
                        function.params[parameter], built.class_name, Where(function.node, function),
                        possible=built.possible, condition=built.condition, built=built, factory=passed.callee,
                    )
        self._passed[function] = found
        return found

    def _project_built(self, call: cst.Call, path: tuple | None) -> list[Built]:
        """What a project factory called here returns at `path` (None: anywhere in its result)."""
        qualname = self.imported_name(call)
        if qualname is None:
            return []
        return [b for b in self.project.built(self.filename, qualname) if path is None or b.path == path]

    def project_helper(self, call: cst.Call) -> tuple[Helper, tuple[tuple[str, int], ...]] | None:
        """The project function of another module that `call` runs, and the saves it makes."""
        qualname = self.imported_name(call)
        return self.project.helper(self.filename, qualname) if qualname is not None else None

    def in_project(self, call: cst.Call) -> bool:
        """`call` runs code of another module of this project (summarised or not)."""
        qualname = self.imported_name(call)
        return qualname is not None and self.project.defines(self.filename, qualname)

    def imported_name(self, call: cst.Call) -> str | None:
        """The absolute name of an imported function or class that `call` calls, in project mode."""
        dotted = dotted_name(call.func)
        if self.project is None or dotted is None or dotted.split(".")[0] not in self.index.imports:
            return None
        return self.index.qualname(call.func)

    @staticmethod
    def _from_factory(call: cst.Call, where: Where, built: list[Built]) -> Optimizers:
        first = built[0]
        possible = all(b.possible for b in built)
        site = OptimizerSite(
            call, first.class_name, where, possible=possible, condition=first.condition, built=first,
            factory=dotted_name(call.func),
        )
        return Optimizers((site,), not possible)

    def _calls_of(self, node: cst.BaseExpression, where: Where) -> list[tuple[cst.Call, Where]]:
        """The calls an expression is, directly or through assignments."""
        if isinstance(node, cst.Call):
            return [(node, where)]
        origins, _ = self.origins(node, where) if isinstance(node, cst.Name) else ([], False)
        return [(origin, place) for origin, place in origins if isinstance(origin, cst.Call)]

    def _local_returns(self, call: cst.Call, where: Where) -> list[tuple[cst.BaseExpression, Where]]:
        """What a call to a function or method of this module returns."""
        func = call.func
        candidates: list[Function] = []
        if isinstance(func, cst.Name):
            candidates = [f for f in self.index.functions_by_name.get(func.value, []) if f.class_name is None]
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            class_name = where.function.class_name if where.function else None
            candidates = [
                f for f in self.index.functions_by_name.get(func.attr.value, []) if f.class_name == class_name
            ]
        return [(value, Where(statement, function)) for function in candidates for value, statement in function.returns]

    @staticmethod
    def _combine(results: list[Optimizers]) -> Optimizers:
        sites = tuple(s for r in results for s in r.sites)
        return Optimizers(sites, bool(results) and all(r.certain for r in results))


def _dict_entries(node: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    entries = []
    if isinstance(node, cst.Dict):
        for element in node.elements:
            if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString):
                entries.append((element.key.evaluated_value, element.value))
    elif isinstance(node, cst.Call):
        entries = [(a.keyword.value, a.value) for a in node.args if a.keyword is not None]
    return entries


def _argparse_dest(call: cst.Call) -> str | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dest" and isinstance(arg.value, cst.SimpleString):
            return arg.value.evaluated_value
    flags = [a.value.evaluated_value for a in call.args if a.keyword is None and isinstance(a.value, cst.SimpleString)]
    long = [f for f in flags if isinstance(f, str) and f.startswith("--")]
    chosen = long[0] if long else (flags[0] if flags else None)
    return chosen.lstrip("-").replace("-", "_") if isinstance(chosen, str) else None


def _part_of_result(node: cst.BaseExpression) -> tuple[cst.BaseExpression, str] | None:
    """`x["optimizer"]` / `x.optimizer` (not `self.optimizer`): (x, "optimizer")."""
    if isinstance(node, cst.Subscript) and (key := subscript_key(node)) is not None:
        return node.value, key
    if isinstance(node, cst.Attribute) and not (isinstance(node.value, cst.Name) and node.value.value == "self"):
        return node.value, node.attr.value
    return None


def _is_getattr(node: cst.Call) -> bool:
    return isinstance(node.func, cst.Name) and node.func.value == "getattr" and len(node.args) >= 2


def last_name(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None
