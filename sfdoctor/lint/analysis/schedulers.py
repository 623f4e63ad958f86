"""LR schedulers constructed on ScheduleFree optimizers: the facts SF101-SF104 report on."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import pairwise

import libcst as cst

from ...findings import Fix
from ..fixes.edits import call_statement, remove_statements, set_keyword
from ..rule import FileContext
from .constructions import without_lookalikes
from .index import CallSite, Function, child_nodes, descendants, dotted_name
from .schedules import schedule_functions
from .values import SIGNATURES, Evaluator, Optimizers, OptimizerSite, Values, Where, last_name

TORCH_PREFIX = "torch.optim.lr_scheduler."
# optimizer position, by scheduler family
FUNCTION_SCHEDULERS = {"get_scheduler": 1, "create_scheduler": 1, "create_scheduler_v2": 0}
COMBINERS = {"SequentialLR", "ChainedScheduler"}
MOMENTUM_CYCLERS = {"OneCycleLR", "CyclicLR"}
BY_NAME = "torch.optim.lr_scheduler class chosen by name"
SF_TEST = re.compile(r"schedule_?free|train_mode|ScheduleFree", re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    """(fires, certain), as `Values.triggers` gives."""

    fires: bool = False
    certain: bool = False

    @classmethod
    def of(cls, pair: tuple[bool, bool]) -> Fact:
        return cls(*pair)


NO = Fact()
YES = Fact(True, True)


@dataclass(frozen=True)
class Scheduler:
    site: CallSite
    kind: str  # "LambdaLR", "get_linear_schedule_with_warmup", ...
    optimizers: Optimizers
    starts_at_zero: Fact
    warms_up: Fact
    cycles_momentum: Fact
    warmup_length: int | None  # steps until the factor reaches 1, where known
    no_op: bool  # a constant factor of 1: a deliberate dummy scheduler
    steps_neutralised: bool  # handed to a wrapper of this module that checks for ScheduleFree
    members: tuple[cst.Call, ...]  # the schedulers a SequentialLR/ChainedScheduler combines
    part_of_combined: bool = False  # a member of SequentialLR/ChainedScheduler: reported there

    @property
    def where(self) -> Where:
        return Where(self.site.statement, self.site.function)

    @property
    def certain(self) -> bool:
        return self.optimizers.certain


def is_scheduler(qualname: str | None) -> bool:
    if not qualname:
        return False
    if qualname in ("torch.optim.swa_utils.SWALR", BY_NAME):
        return True
    name = qualname.rsplit(".", 1)[-1]
    if qualname.startswith(TORCH_PREFIX):
        return name[:1].isupper() and name not in ("LRScheduler", "_LRScheduler")
    if qualname.startswith(("transformers", "diffusers")):
        return name.startswith("get_") and ("schedule" in name or name == "get_scheduler")
    return qualname.startswith("timm.scheduler") and (name[:1].isupper() or name.startswith("create_scheduler"))


def schedulers(context: FileContext) -> list[Scheduler]:
    index, evaluator = context.index, context.evaluator
    found = []
    for site in index.calls:
        qualname = site.qualname or _looked_up(context, site)
        if not is_scheduler(qualname):
            continue
        kind = last_name(site.node.func) if qualname != BY_NAME else BY_NAME
        kind = kind or ""
        where = Where(site.statement, site.function)
        optimizer = _optimizer_argument(evaluator, site.node, kind)
        members = _members(context, site.node, where) if kind in COMBINERS else []
        if optimizer is None and members:
            # ChainedScheduler without `optimizer=`: the members' optimizers
            member_optimizers = [_optimizers_of(context, call, place) for call, place in members]
            optimizers = Optimizers(
                tuple(s for o in member_optimizers for s in o.sites), all(o.certain for o in member_optimizers)
            )
        elif optimizer is None or _on_non_schedulefree_branch(context, site):
            continue
        else:
            optimizers = evaluator.optimizers(optimizer, where)
        optimizers = without_lookalikes(optimizers)  # their lr behaviour is not verified
        if not optimizers.sites:
            continue
        found.append(_describe(context, site, kind, optimizers, where, tuple(call for call, _ in members)))
    consumed = {id(call) for s in found for call in s.members}
    found = [replace(s, part_of_combined=True) if id(s.site.node) in consumed else s for s in found]
    # ScheduleFree+ stores x and keeps Adam's betas inside: lr 0 cannot give 0/0, cycling beta1 cannot corrupt x
    return [replace(s, starts_at_zero=NO, cycles_momentum=NO) if all(o.is_adamc for o in s.optimizers.sites) else s
            for s in found]


def _looked_up(context: FileContext, site: CallSite) -> str | None:
    """BY_NAME for a scheduler class looked up by name: `getattr(torch.optim.lr_scheduler, name)(...)`,
    `eval(f"torch.optim.lr_scheduler.{name}")(...)`, directly or through a variable."""
    func = site.node.func
    origins = [func] if isinstance(func, cst.Call) else []
    if isinstance(func, cst.Name) and func.value not in context.index.imports:
        origins = [o for o, _ in context.evaluator.origins(func, Where(site.statement, site.function))[0]]
    for origin in origins:
        if not (isinstance(origin, cst.Call) and isinstance(origin.func, cst.Name) and origin.args):
            continue
        first = origin.args[0].value
        if origin.func.value == "getattr" and context.index.qualname(first) == TORCH_PREFIX[:-1]:
            return BY_NAME
        if origin.func.value == "eval" and TORCH_PREFIX in context.index.code(first):
            return BY_NAME
    return None


def _optimizers_of(context: FileContext, call: cst.Call, where: Where) -> Optimizers:
    """The ScheduleFree optimizers a scheduler call is constructed on."""
    optimizer = _optimizer_argument(context.evaluator, call, last_name(call.func) or "")
    return context.evaluator.optimizers(optimizer, where) if optimizer is not None else Optimizers()


def _optimizer_argument(evaluator: Evaluator, call: cst.Call, kind: str) -> cst.BaseExpression | None:
    position = FUNCTION_SCHEDULERS.get(kind, 0)
    if kind == "ChainedScheduler":
        return evaluator.argument(call, "optimizer", 1)
    return evaluator.argument(call, "optimizer", position)


def _describe(
    context: FileContext,
    site: CallSite,
    kind: str,
    optimizers: Optimizers,
    where: Where,
    members: tuple[cst.Call, ...] = (),
) -> Scheduler:
    evaluator = context.evaluator
    call = site.node
    starts_at_zero = warms_up = cycles = NO
    warmup_length = None
    no_op = False

    def values(keyword: str, position: int | None = None, default=None) -> Values:
        node = evaluator.argument(call, keyword, position)
        return evaluator.values(node, where) if node is not None else Values((default,), True)

    if kind == "LambdaLR":
        functions = schedule_functions(evaluator, evaluator.argument(call, "lr_lambda", 1) or cst.Name("_"), where)
        at_zero = [f.factor(0) for f in functions]
        if functions and None not in at_zero:
            starts_at_zero = Fact(any(v == 0 for v in at_zero), all(v == 0 for v in at_zero))
            warms_up = Fact(any(v < 1 for v in at_zero), all(v < 1 for v in at_zero))
            no_op = all(f.factor(s) == 1 for f in functions for s in (0, 1, 10, 1000, 100_000))
            if starts_at_zero.fires:
                warmup_length = functions[0].warmup_length()
    elif kind == "ConstantLR":
        factor = values("factor", 1, 1 / 3)
        starts_at_zero = Fact.of(factor.triggers(lambda v: v == 0))
        warms_up = Fact.of(factor.triggers(lambda v: v < 1))
        no_op = factor.single == 1
    elif kind == "LinearLR":
        start, end = values("start_factor", 1, 1 / 3), values("end_factor", 2, 1.0)
        warms_up = Fact.of(start.triggers(lambda v: v < (end.single if end.single is not None else 1.0)))
    elif kind in MOMENTUM_CYCLERS:
        cycles = Fact.of(values("cycle_momentum", None, True).triggers(lambda v: v is True))
        warms_up = YES if kind == "OneCycleLR" else NO
    elif kind in COMBINERS:
        if members:
            first = _leading_member(context, members[0])
            if first is not None:
                starts_at_zero, warms_up, warmup_length = first.starts_at_zero, first.warms_up, first.warmup_length
    elif site.qualname and site.qualname.startswith(("transformers", "diffusers")):
        if kind == "get_constant_schedule":
            no_op = True
        else:
            name = values("name", 0, None) if kind == "get_scheduler" else Values((kind,), True)
            constant = name.triggers(lambda v: str(v).endswith("constant") or str(v) == "SchedulerType.CONSTANT")
            no_op = constant[1]
            # get_scheduler(name, optimizer, ...): transformers then takes num_warmup_steps, diffusers step_rules
            position = {"get_scheduler": 3 if site.qualname.startswith("diffusers") else 2}.get(kind, 1)
            warmup = values("num_warmup_steps", position, 0)
            if not no_op:
                zero = warmup.triggers(lambda v: v is not None and v > 0)
                starts_at_zero = warms_up = Fact(zero[0], zero[1] and not constant[0])
                warmup_length = warmup.single if isinstance(warmup.single, int) else None
    elif site.qualname and site.qualname.startswith("timm.scheduler"):
        warmup_t = values("warmup_t", None, 0)
        warms_up = Fact.of(warmup_t.triggers(lambda v: v > 0))
        init = values("warmup_lr_init", None, 0)
        zero_init = init.triggers(lambda v: v == 0)
        starts_at_zero = Fact(warms_up.fires and zero_init[0], warms_up.certain and zero_init[1])
        warmup_length = warmup_t.single if isinstance(warmup_t.single, int) else None
    return Scheduler(
        site, kind, optimizers, starts_at_zero, warms_up, cycles, warmup_length, no_op,
        _steps_neutralised(context, site), members,
    )


def _leading_member(context: FileContext, call: cst.Call) -> Scheduler | None:
    """The first scheduler a combiner runs: its start is the combiner's start."""
    site = next((s for s in context.index.calls if s.node is call), None)
    if site is None or not is_scheduler(site.qualname):
        return None
    # only the schedule's shape is read from it, not its optimizer
    return _describe(context, site, last_name(call.func) or "", Optimizers(), Where(site.statement, site.function))


def _members(context: FileContext, call: cst.Call, where: Where) -> list[tuple[cst.Call, Where]]:
    """The scheduler calls a SequentialLR/ChainedScheduler combines, in order."""
    evaluator = context.evaluator
    argument = evaluator.argument(call, "schedulers", 1 if last_name(call.func) == "SequentialLR" else 0)
    if argument is None:
        return []
    members = []
    for origin, place in evaluator.origins(argument, where)[0]:
        if not isinstance(origin, (cst.List, cst.Tuple)):
            continue
        for element in origin.elements:
            members += [
                (member, member_place)
                for member, member_place in evaluator.origins(element.value, place)[0]
                if isinstance(member, cst.Call)
            ]
        break
    return members


def sf_test_polarity(context: FileContext, test: cst.BaseExpression) -> bool | None:
    """True for a test that holds for ScheduleFree (`"schedulefree" in args.optim`), False for its
    negation, None for a test that is not about ScheduleFree."""
    negated = False
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        negated, test = not negated, test.expression
    if not SF_TEST.search(context.index.code(test)):
        return None
    if (
        isinstance(test, cst.Comparison)
        and len(test.comparisons) == 1
        and isinstance(test.comparisons[0].operator, (cst.NotEqual, cst.NotIn, cst.IsNot))
    ):
        negated = not negated
    return not negated


def _on_non_schedulefree_branch(context: FileContext, site: CallSite) -> bool:
    """Scheduler code that only runs when the optimizer is not ScheduleFree."""
    statements = list(context.index.enclosing_statements(site.statement))
    for inner, outer in pairwise(statements):
        if isinstance(outer, cst.If):
            polarity = sf_test_polarity(context, outer.test)
            if polarity is None:
                continue
            in_body = any(s is inner for s in outer.body.body) if isinstance(outer.body, cst.IndentedBlock) else False
            if in_body != polarity:
                return True
        body, position = context.index.block.get(inner, ((), 0))
        for earlier in body[:position]:
            if isinstance(earlier, cst.If) and sf_test_polarity(context, earlier.test) and _exits(earlier.body):
                return True
    return False


def _exits(block: cst.BaseSuite) -> bool:
    """The block's last line returns, raises or continues (a compound last statement does not count)."""
    last = block.body[-1] if isinstance(block, cst.IndentedBlock) else block
    if not isinstance(last, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return False
    return any(isinstance(s, (cst.Return, cst.Raise, cst.Continue)) for s in last.body)


def _steps_neutralised(context: FileContext, site: CallSite) -> bool:
    """The scheduler is handed to a class or function of this module that checks for ScheduleFree
    (a wrapper whose step() returns early for it)."""
    index = context.index
    names = {
        target.target.value
        for small in (site.statement.body if isinstance(site.statement, cst.SimpleStatementLine) else [])
        if isinstance(small, cst.Assign)
        for target in small.targets
        if isinstance(target.target, cst.Name)
    }
    for other in index.calls:
        passes = any(
            a.value is site.node or (isinstance(a.value, cst.Name) and a.value.value in names) for a in other.node.args
        )
        if not passes:
            continue
        callee = last_name(other.node.func)
        definitions = [f.node for f in index.functions_by_name.get(callee or "", [])]
        definitions += [
            s for s in index.parent_statement if isinstance(s, cst.ClassDef) and s.name.value == callee
        ]
        if any(SF_TEST.search(index.code(d)) for d in definitions):
            return True
    return False


def removal_fix(context: FileContext, scheduler: Scheduler) -> Fix | None:
    """SF102/SF104's fix: delete the scheduler's assignment, its named members' and its `.step()`
    lines, and pass `warmup_steps=N` to the optimizer where it has none. None unless the scheduler
    (and each member) is a plain `name = ...` / `self.name = ...` used nowhere else, on one
    optimizer, and N is known where it must be added."""
    if len({id(site.call) for site in scheduler.optimizers.sites}) != 1:  # a ChainedScheduler lists it per member
        return None
    optimizer = scheduler.optimizers.sites[0]
    removed: list[cst.CSTNode] = []
    steps: list[cst.CSTNode] = []
    identifiers = []
    for call in (scheduler.site.node, *scheduler.members):
        site = context.index.site_of[call]
        if any(statement is site.statement for statement in removed):
            continue  # written inside the combiner's list (or listed twice): already goes
        target = _assigned_target(site)
        if target is None:
            return None
        own_steps = _step_statements(context, target, site.function)
        removed += [site.statement, *own_steps]
        steps += own_steps
        identifiers.append(target.value if isinstance(target, cst.Name) else target.attr.value)
    if any(s is optimizer.where.statement for s in removed) or any(
        _used_elsewhere(context, identifier, removed) for identifier in identifiers
    ):
        return None
    edits = remove_statements(context, removed)
    message = f"remove {scheduler.kind} and its .step() calls"
    existing = optimizer.argument("warmup_steps")
    if existing is not None:
        # the optimizer already warms up (SF104): keep its warmup_steps as they are
        if not context.evaluator.values(existing, optimizer.where).triggers(lambda v: v >= 1)[1]:
            return None
        return Fix(message, "unsafe", edits)
    call = optimizer.call
    if (
        "warmup_steps" not in SIGNATURES.get(optimizer.class_name, ())  # RAdam, the wrappers, factories
        or not call.args
        or any(arg.star for arg in call.args)  # **kwargs may hold warmup_steps already
        or not all(_steps_with_optimizer(context, statement, optimizer) for statement in steps)
    ):
        return None
    value = _warmup_expression(context, scheduler, optimizer)
    if value is None:
        return None
    added = set_keyword(context, call, "warmup_steps", value, None, "unsafe")
    return Fix(f"{message}, pass warmup_steps={value} to {optimizer.class_name}(...)", "unsafe", edits + added.edits)


def _assigned_target(site: CallSite) -> cst.Name | cst.Attribute | None:
    """`name` or `self.name` where the call's statement is only `name = call`."""
    statement = site.statement
    if not (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Assign)
        and len(statement.body[0].targets) == 1
        and statement.body[0].value is site.node
    ):
        return None
    target = statement.body[0].targets[0].target
    if isinstance(target, cst.Name):
        return target
    is_self = isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self"
    return target if is_self and site.function is not None else None  # type: ignore[return-value]


def _step_statements(
    context: FileContext, target: cst.Name | cst.Attribute, function: Function | None
) -> list[cst.CSTNode]:
    """The `target.step()` lines: in the assigning function for a name, in its class for `self.name`."""
    found: list[cst.CSTNode] = []
    for site in context.index.calls:
        func = site.node.func
        if not (
            isinstance(func, cst.Attribute)
            and func.attr.value == "step"
            and not site.node.args  # step(epoch) counts epochs: a reference the fix does not remove
            and dotted_name(func.value) == dotted_name(target)
        ):
            continue
        if isinstance(target, cst.Name):
            same_scope = site.function is function
        else:
            same_scope = site.function is not None and function is not None and site.function.class_name == function.class_name
        statement = call_statement(context, site.node) if same_scope else None
        if statement is not None:
            found.append(statement)
    return found


def _used_elsewhere(context: FileContext, identifier: str, removed: list[cst.CSTNode]) -> bool:
    """Whether the identifier occurs anywhere in the file (as a name, an attribute, a keyword, a
    string) outside the removed statements: any other use (get_last_lr(), state_dict(),
    prepare(...), a test, a return) would break once the scheduler is gone."""
    return any(
        (isinstance(node, cst.Name) and node.value == identifier)
        or (isinstance(node, cst.SimpleString) and node.evaluated_value == identifier)
        for node in descendants(context.module, frozenset(id(statement) for statement in removed))
    )


def _steps_with_optimizer(context: FileContext, statement: cst.CSTNode, optimizer: OptimizerSite) -> bool:
    """The scheduler's step() sits in the block that steps the optimizer (`optimizer.step()`,
    `scaler.step(optimizer)`), so its warm-up counts optimizer steps, not epochs."""
    block = context.index.block.get(statement, ((), 0))[0]
    for site in context.index.calls:
        func = site.node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "step"):
            continue
        if context.index.block.get(site.statement, ((), 0))[0] is not block:
            continue
        where = Where(site.statement, site.function)
        for node in (func.value, *(arg.value for arg in site.node.args)):
            if any(s.call is optimizer.call for s in context.evaluator.optimizers(node, where).sites):
                return True
    return False


def _warmup_expression(context: FileContext, scheduler: Scheduler, optimizer: OptimizerSite) -> str | None:
    """N for `warmup_steps=N`: the one name or attribute in the warm-up's construction (an argument,
    a name its lambda reads) that holds N and is bound at the optimizer's construction, so that a
    CLI flag keeps working; else the integer."""
    steps = scheduler.warmup_length
    if type(steps) is not int or steps < 1:
        return None
    evaluator = context.evaluator
    leading = scheduler.members[0] if scheduler.members else scheduler.site.node
    site = context.index.site_of[leading]
    sources: list[cst.CSTNode] = [arg.value for arg in leading.args]
    parameters = set()
    if last_name(leading.func) == "LambdaLR":
        schedule = evaluator.argument(leading, "lr_lambda", 1)
        functions = schedule_functions(evaluator, schedule, Where(site.statement, site.function)) if schedule else []
        sources += [f.node.body for f in functions]
        parameters = {f.step_name for f in functions}
    found = set()
    for node in _names(sources):
        if isinstance(node, cst.Name) and node.value in parameters:
            continue
        value = evaluator.values(node, optimizer.where).single
        if type(value) is int and value == steps and _bound_at(context, node, optimizer.where):
            found.add(context.index.code(node))
    return found.pop() if len(found) == 1 else str(steps)


def _names(nodes: list[cst.CSTNode]) -> list[cst.BaseExpression]:
    """The names and attribute chains (`args.warmup`) in the nodes."""
    found: list[cst.BaseExpression] = []
    pending = list(nodes)
    while pending:
        node = pending.pop()
        if isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) is not None:
            found.append(node)
        elif isinstance(node, cst.Attribute):
            pending.append(node.value)  # `f().warmup`: `warmup` alone is no name
        else:
            pending.extend(child_nodes(node))
    return found


def _bound_at(context: FileContext, node: cst.BaseExpression, where: Where) -> bool:
    """A name assigned in the optimizer's own scope must be assigned before the optimizer's construction."""
    root = node
    while isinstance(root, cst.Attribute):
        root = root.value
    assert isinstance(root, cst.Name)
    if (where.function, root.value) not in context.index.bindings:
        return True  # a parameter, or a name of an enclosing scope: its value was checked
    return context.index.reaching_bindings(root.value, where.statement, where.function)[1]
