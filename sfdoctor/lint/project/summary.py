"""Phase 1 of the project analysis: one module's summary, from the file's own analysis.

What a module tells the others: which of its functions return a ScheduleFree optimizer (and where
in the result: `return name, args, optimizer` hands it back as element 2) in which mode, which of
its classes are ScheduleFree classes or hold one in `self.x`, and what each function does when
called (saves a model, evaluates, switches an optimizer's mode).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import libcst as cst

from ..analysis.fractions import fraction_parameters
from ..analysis.index import CallSite, Function, dotted_name
from ..analysis.lightning import class_methods, returned_optimizer
from ..analysis.modes import EVALUATION_NAME, OPTIMIZER_NAME, SAVE_METHODS, kinds, mode_setup
from ..analysis.values import OptimizerSite, Where, last_name
from ..rule import FileContext
from .facts import Built, ClassFacts, Helper, ModuleSummary, Passed, Setting

# A function named for saving the model (not `save_state`: a resume state is no checkpoint of the weights).
SAVES_BY_NAME = re.compile(r"(^|_)save_(\w*_)?(model|checkpoint|ckpt|weights|pretrained)")


def summarise(context: FileContext, module: str) -> ModuleSummary:
    index = context.index
    project = context.evaluator.project
    imports = {
        local: project.absolute(context.filename, target) if project is not None else target
        for local, target in index.imports.items()
    }
    built: dict[str, tuple[Built, ...]] = {}
    helpers: dict[str, Helper] = {}
    for function in index.functions:
        if function.parent is not None:
            continue  # a nested function is not callable from another module
        name = f"{function.class_name}.{function.name}" if function.class_name else function.name
        returned = _returned(context, function)
        if returned:
            built[name] = returned
        helpers[name] = _helper(context, function, module)
    classes = {name: class_facts(context, name) for name in index.class_bases}
    trains = bool(context.analysis(mode_setup).receivers)
    imported = [(site, name) for site in index.calls if (name := context.evaluator.imported_name(site.node))]
    uses = tuple(sorted({project_name(context, name) for _, name in imported}))
    return ModuleSummary(
        context.filename, module, imports, built, helpers, classes, trains, uses, _passes(context, imported),
        _warmups(context, imported),
    )


def class_facts(context: FileContext, name: str) -> ClassFacts:
    project = context.evaluator.project
    bases = context.index.class_bases[name]
    configure = next((f for f in context.index.functions_by_name.get("configure_optimizers", [])
                      if f.class_name == name and f.parent is None), None)
    site = returned_optimizer(context, configure) if configure is not None else None
    return ClassFacts(
        tuple(project.absolute(context.filename, b) if project is not None else b for b in bases),
        name in context.evaluator.schedulefree_subclasses,
        _attributes(context, name),
        _built(context, site, (), None, configure) if site is not None else None,
        class_methods(context, name),
    )


def _warmups(context: FileContext, imported: list[tuple[CallSite, str]]) -> tuple[Setting, ...]:
    """Warm-up settings (`config.learning_rate_warmup_steps`) this module hands to functions it imports:
    the callee may read them as a fraction of the run, while an optimizer elsewhere takes them as steps."""
    found = []
    for site, name in imported:
        for argument, position, keyword in _handed(site):
            if not isinstance(argument.value, cst.Attribute) or "warmup" not in argument.value.attr.value:
                continue
            row = context.location(argument.value)[0].row
            found.append(Setting(project_name(context, name), position, keyword, argument.value.attr.value,
                                 context.filename, row))
    return tuple(found)


def _passes(context: FileContext, imported: list[tuple[CallSite, str]]) -> tuple[Passed, ...]:
    """ScheduleFree optimizers this module hands to the functions it imports (an optimizer-named argument)."""
    found = []
    for site, name in imported:
        where = Where(site.statement, site.function)
        for argument, position, keyword in _handed(site):
            text = dotted_name(argument.value)
            if text is None or not OPTIMIZER_NAME.search(text.lower()):
                continue
            optimizers = context.evaluator.optimizers(argument.value, where)
            for optimizer in optimizers.sites:
                built = _built(context, optimizer, (), None, None)
                if not optimizers.certain and not built.possible:  # `opt` holds another optimizer on other paths
                    built = replace(built, possible=True, condition=_condition(context, optimizer, always=True))
                found.append(Passed(project_name(context, name), position, keyword, built))
    return tuple(dict.fromkeys(found))


def _handed(site: CallSite) -> Iterator[tuple[cst.Arg, int | None, str | None]]:
    """The call's arguments (`*args`/`**kwargs` aside), each with its position or its keyword."""
    positional = 0
    for argument in site.node.args:
        if argument.star:
            continue
        if argument.keyword is not None:
            yield argument, None, argument.keyword.value
        else:
            yield argument, positional, None
            positional += 1


def project_name(context: FileContext, qualname: str) -> str:
    """An imported name as the project view knows it (relative imports resolved)."""
    project = context.evaluator.project
    return project.absolute(context.filename, qualname) if project is not None else qualname


def _returned(context: FileContext, function: Function) -> tuple[Built, ...]:
    found: list[Built] = []
    for value, statement in function.returns:
        where = Where(statement, function)
        for path, expression in _parts(value):
            optimizers = context.evaluator.optimizers(expression, where)
            key = frozenset(site.call for site in optimizers.sites)
            for site in optimizers.sites:
                built = _built(context, site, path, _exit_mode(context, function, key), function)
                if not optimizers.certain and not built.possible:  # another path returns something else
                    built = replace(built, possible=True, condition=_condition(context, site, always=True))
                found.append(built)
    return tuple(found)


def _parts(value: cst.BaseExpression) -> list[tuple[tuple, cst.BaseExpression]]:
    """The returned value and where in it each part sits: a tuple's elements, a dict's or a
    dataclass-like call's keyword values."""
    if isinstance(value, (cst.Tuple, cst.List)):
        return [((position,), e.value) for position, e in enumerate(value.elements) if isinstance(e, cst.Element)]
    if isinstance(value, cst.Dict):
        return [
            ((e.key.evaluated_value,), e.value)
            for e in value.elements
            if isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString)
        ]
    if isinstance(value, cst.Call) and any(a.keyword is not None for a in value.args):
        return [((), value)] + [((a.keyword.value,), a.value) for a in value.args if a.keyword is not None]
    return [((), value)]


def _built(context: FileContext, site: OptimizerSite, path: tuple, mode: str | None, function: Function | None) -> Built:
    """A construction seen from the callers of `function`: its parameters that feed the optimizer's
    params are named, so that a caller knows which model it trains."""
    inner = site.built
    params_argument = site.params_argument()
    while isinstance(params_argument, cst.Call) and isinstance(params_argument.func, cst.Attribute):
        params_argument = params_argument.func.value  # `model.parameters()`: the model is the parameter
    params = None
    names = [p for p in function.params if not (function.class_name and p in ("self", "cls"))] if function else []
    if isinstance(params_argument, cst.Name) and params_argument.value in names:
        params = (names.index(params_argument.value), params_argument.value)
    if inner is not None:  # a factory that returns another factory's (or a caller's) optimizer
        return Built(path + inner.path, inner.class_name, site.possible, inner.condition, mode or inner.mode,
                     inner.filename, inner.row, params)
    return Built(path, site.class_name, site.possible, _condition(context, site), mode, context.filename,
                 context.location(site.call)[0].row, params)


def _condition(context: FileContext, site: OptimizerSite, always: bool = False) -> str | None:
    """The innermost `if` test around a construction that holds only on some paths."""
    if not site.possible and not always:
        return None
    for statement in context.index.enclosing_statements(site.where.statement):
        if isinstance(statement, cst.If) and "schedule" in (text := context.index.code(statement.test)).lower():
            return text
    return None


def _exit_mode(context: FileContext, function: Function, key: frozenset) -> str | None:
    """The mode the function returns its optimizer in, when every path agrees."""
    analysis = context.analysis(mode_setup)
    if key not in analysis.keys:
        return None
    result = analysis.result(function)  # walked on demand: a summary alone walks only the factories
    if result is None or result.exit is None:
        return None
    found = kinds(result.exit.get(key, frozenset()))
    return next(iter(found)) if len(found) == 1 and found <= {"train", "eval"} else None


def _helper(context: FileContext, function: Function, module: str) -> Helper:
    index = context.index
    params = tuple(p for p in function.params if not (function.class_name and p in ("self", "cls")))
    saves: list[tuple[str, str]] = []
    handles_mode = False
    modes: dict[str, str] = {}
    calls: list[str] = []
    for site in index.calls:
        if site.function is not function:
            continue
        func = site.node.func
        name = last_name(func) or ""
        text = (dotted_name(func) or "").lower()
        if name in SAVE_METHODS or (name == "save" and (site.qualname or "").startswith("torch.")):
            # the call's first line, not its row: positions cost a code generation pass over the file
            saves.append((context.filename, context.index.code(site.node).split("\n", 1)[0]))
        if OPTIMIZER_NAME.search(text) and ("train" in name or "eval" in name):
            handles_mode = True  # optimizer.eval(), optimizer_eval_fn()
        receiver = dotted_name(func.value) if isinstance(func, cst.Attribute) else None
        if name in ("train", "eval") and receiver in params and index.parent_statement.get(site.statement) is function.node:
            modes[receiver] = name
        if (imported_name := context.evaluator.imported_name(site.node)) is not None:
            calls.append(project_name(context, imported_name))
        elif isinstance(func, cst.Name) and func.value in index.functions_by_name:
            calls.append(f"{module}.{func.value}")
        elif receiver == "self" and function.class_name:
            calls.append(f"{module}.{function.class_name}.{name}")
    if not saves and SAVES_BY_NAME.search(function.name):
        # `save_sd_model_on_epoch_end(...)`: the write itself may sit behind a callback it is handed
        saves.append((context.filename, f"def {function.name}("))
    return Helper(
        params,
        tuple(saves),
        bool(EVALUATION_NAME.match(function.name)),
        handles_mode,
        tuple(modes.items()),
        tuple(dict.fromkeys(calls)),
        context.analysis(fraction_parameters).get(function, ()),
    )


def _attributes(context: FileContext, class_name: str) -> dict[str, tuple[Built, ...]]:
    """`self.optimizer = ...` in the class's methods that holds a ScheduleFree optimizer."""
    found = {}
    for (owner, attribute), bindings in context.index.attributes.items():
        if owner != class_name:
            continue
        built = []
        for binding in bindings:
            function = context.index.function_of(binding.statement)
            optimizers = context.evaluator.optimizers(binding.value, Where(binding.statement, function))
            built += [_built(context, site, (), None, function) for site in optimizers.sites if function]
        if built:
            found[attribute] = tuple(built)
    return found
