"""The train/eval mode of each ScheduleFree optimizer along the control flow (SF2xx, SF403).

An abstract interpretation over each function's statements. The state maps each optimizer (the
set of constructions a receiver may hold) to the facts that may hold at that point:
`("train", origin)`, `("eval", origin)`, `("unknown", origin)`, `("loaded", load call)`, or ENTRY
(whatever the mode was when the function was called). Branches join by union, loops run to a
fixpoint (so an `eval()` at the end of an epoch reaches the `step()` at the top of the next), and a
call to a function of this module applies that function's exit state, with ENTRY standing for the
caller's state. Events (step, mode calls, loads, evaluation, saving) keep the state they were
reached with; ENTRY is resolved afterwards from the states at the function's call sites.

Only files that construct a ScheduleFree optimizer are analysed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from ...findings import Location, Related
from ..project.facts import EVIDENCE, Helper
from ..project.view import row_of
from ..rule import FileContext
from .ema import ema_update
from .index import STATEMENT_TYPES, CallSite, Function, Unpacked, child_nodes, descendants, dotted_name
from .schedulers import is_scheduler, sf_test_polarity
from .values import CONFIG, PASS_THROUGH, Evaluator, Optimizers, OptimizerSite, Where, last_name

Fact = tuple[str, "cst.CSTNode | None"]
Facts = frozenset[Fact]
Key = frozenset[cst.Call]  # the constructions an optimizer expression may hold
State = dict[object, Facts]

ENTRY: Fact = ("entry", None)
AT_ENTRY: Facts = frozenset({ENTRY})
BACKWARD = "backward"  # state key: a gradient from backward() that no step() has consumed yet
CLEAN: Facts = frozenset({("clean", None)})
MAX_ITERATIONS = 8
# how the walker records events: normally, not at all (loop fixpoint passes), or as later iterations
RECORD, SKIP, LATER = "record", "skip", "later"
MAX_GATHER_DEPTH = 3
MAX_CORRELATED = 24  # statements searched for the second `if` of a correlated pair
# calls followed into this module's functions, nested (each costs ~8 Python frames of the walk)
MAX_CALL_DEPTH = 40
MAX_OPTIONS = 16

# step_func(loss) is AdamCScheduleFreePlusPaper's step
OPTIMIZER_METHODS = frozenset({"step", "step_func", "train", "eval", "load_state_dict"})
# Calls that take the optimizer and leave its mode alone; any other external call that is handed
# the optimizer may switch it (HF Trainer, a helper in another file): the mode becomes unknown.
MODE_PRESERVING = frozenset(
    {
        "prepare", "prepare_optimizer", "clip_grad_norm_", "clip_grad_value_", "unscale_", "update",
        "print", "len", "isinstance", "hasattr", "getattr", "type", "id", "str", "repr", "initialize",
        "register_for_checkpointing", "info", "debug", "warning", "log", "watch", "state_dict", "zero_grad",
    }
)
EVALUATION_NAME = re.compile(
    r"^(run_|do_|_)?(eval|evaluate|evaluation|validate|validation|valid|val|test|testing|sample|sampling)(_\w*)?$"
    r"|_(eval|evaluate|evaluation|validate|validation|val|test)$"
)
EVALUATING_FUNCTION = re.compile(r"eval|valid|sample|test")
# Not `accelerator.save_state`: a resume state holds y with the optimizer state in train mode, and
# loading it resumes training exactly; an eval() before it would restore an optimizer in eval mode.
SAVE_METHODS = frozenset({"save_pretrained", "save_model", "save_checkpoint", "save_file", "save_weights"})
# A model's methods that run a forward pass.
FORWARD_METHODS = frozenset({"forward", "generate", "sample", "predict", "module"})
NO_GRAD = frozenset({"no_grad", "inference_mode"})
SWITCHING_NAME = re.compile(r"mode|train|eval")
# Libraries whose calls run a training loop of their own, switching the optimizer's mode.
FRAMEWORKS = ("transformers.", "trl.", "lightning.", "pytorch_lightning.", "deepspeed.")
HASATTR_MODE = re.compile(r"""hasattr\(.*["'](train|eval)["']\)""")
OPTIMIZER_NAME = re.compile(r"(^|[._])opt")
MODE_FUNCTION = re.compile(r"^opt\w*_(?P<mode>train|eval)(_fn|_func|_function)?$")


@dataclass(eq=False)
class Event:
    """Something whose correctness depends on the mode, with the state it was reached with."""

    kind: str  # "step" | "mode" | "load" | "evaluate" | "save" | "recalibrate" | "opaque" | "ema"
    node: cst.CSTNode
    function: Function | None
    state: State
    key: Key | None = None  # the optimizer a step/mode/load call acts on
    mode: str | None = None  # "train" / "eval" for a mode call
    region: cst.CSTNode | None = None  # where an evaluation starts (model.eval(), no_grad, the call)
    models: frozenset[str] = frozenset()  # model expressions an evaluation or save is about
    callees: tuple[Function, ...] = ()  # an evaluate/save-named call of this module's function
    in_autocast_after_forward: bool = False
    related: tuple[Related, ...] = ()  # where a helper of another module saves
    # the states on the iterations after the first of each loop around it
    later: list[State] = field(default_factory=list)


@dataclass
class FunctionResult:
    exit: State | None  # None: no path returns
    events: list[Event] = field(default_factory=list)


@dataclass
class _Loop:
    breaks: list[State] = field(default_factory=list)
    continues: list[State] = field(default_factory=list)


class ModeAnalysis:
    def __init__(self, context: FileContext) -> None:
        self.context = context
        index = context.index
        self.sites = {
            site.node: found
            for site in index.calls
            if (found := context.evaluator.construction(site.node, Where(site.statement, site.function), anywhere=True))
        }
        self.receivers: dict[cst.Call, tuple[Key, Optimizers]] = {}
        # how the call names its optimizer: `optimizer` in optimizer.step() and in scaler.step(optimizer)
        self.receiver_expressions: dict[cst.Call, cst.BaseExpression] = {}
        self.mode_functions: dict[cst.Call, str] = {}  # `optimizer_eval_fn()` -> "eval"
        self.events: list[Event] = []
        self.call_states: dict[Function, list[tuple[Function | None, State]]] = {}
        self.later_call_states: dict[Function, list[tuple[Function | None, State]]] = {}
        self.results: dict[Function | None, FunctionResult] = {}
        self._in_progress: set[Function | None] = set()
        self._entries: dict[tuple[Function | None, Key], Facts] = {}
        self._gathered: dict[tuple[int, int], frozenset[str]] = {}
        self._assigned: dict[cst.CSTNode, frozenset[str]] = {}
        self.callers: dict[Function, list[CallSite]] = {}
        self.keys: set[Key] = set()
        self.calls_by_statement: dict[cst.CSTNode, list[CallSite]] = {}
        self.order: dict[cst.CSTNode, int] = {}
        self.function_of: dict[cst.CSTNode, Function | None] = {}
        # receiver text -> an optimizer built outside this file (evidence from use only where none is built here)
        self.outside: dict[str, OptimizerSite] = self._outside_sites(evidence=not self.sites)
        self.sites.update({site.call: site for site in self.outside.values()})
        evaluator = context.evaluator
        self.sites.update({s.call: s for f in index.functions for s in evaluator.passed_in(f).values()})
        if not self.sites:
            return
        for site in index.calls:
            self.calls_by_statement.setdefault(site.statement, []).append(site)
            self.order[site.node] = site.order
            self.function_of[site.node] = site.function
        self.classes = {s.name.value: s for s in index.parent_statement if isinstance(s, cst.ClassDef)}
        self.callees = {site.node: found for site in index.calls if (found := self._local_callees(site))}
        for site in index.calls:
            for callee in self.callees.get(site.node, ()):
                self.callers.setdefault(callee, []).append(site)
        self._find_receivers()
        self.keys = {key for key, _ in self.receivers.values()} | {frozenset({call}) for call in self.sites}
        self.tied = {call: self._tied_models(site) for call, site in self.sites.items()}
        self.model_texts = self._model_texts()

    def walk(self) -> None:
        """Walk every function, recording the events the rules judge (once; a summary walks only the
        functions it asks `result` for)."""
        if self.sites:
            self.result(None)
            for function in self.context.index.functions:
                self.result(function)

    # -- setup -----------------------------------------------------------------------------

    def _find_receivers(self) -> None:
        """`opt.step()` / `.train()` / `.eval()` / `.load_state_dict()` and `scaler.step(opt)` on an SF optimizer."""
        evaluator = self.context.evaluator
        for site in self.context.index.calls:
            func = site.node.func
            if not (isinstance(func, cst.Attribute) and func.attr.value in OPTIMIZER_METHODS):
                continue
            where = Where(site.statement, site.function)
            receiver = func.value
            optimizers = evaluator.optimizers(receiver, where)
            if not optimizers.sites and func.attr.value == "step" and len(site.node.args) == 1:
                receiver = site.node.args[0].value  # GradScaler.step(optimizer)
                optimizers = evaluator.optimizers(receiver, where)
            if not optimizers.sites and (text := _receiver_text(func.value, site)) in self.outside:
                receiver = func.value
                optimizers = Optimizers((self.outside[text],), not self.outside[text].possible)
            if optimizers.sites:
                self.receivers[site.node] = (frozenset(s.call for s in optimizers.sites), optimizers)
                self.receiver_expressions[site.node] = receiver
        for site in self.context.index.calls:
            if isinstance(site.node.func, cst.Name) and (found := self._mode_function(site)):
                self.mode_functions[site.node], optimizers = found
                self.receivers[site.node] = (frozenset(s.call for s in optimizers.sites), optimizers)
                self.receiver_expressions[site.node] = site.node.func

    def _outside_sites(self, evidence: bool) -> dict[str, OptimizerSite]:
        """Optimizers this file uses but does not build: `self.optimizer` that a base class in another
        module of the project sets, and — evidence from use — an optimizer-named receiver of `train()`
        / `eval()` (`self.model.optimizer.eval()`, often behind an `is_schedulefree` flag) that nothing
        here builds: the code treats it as ScheduleFree, so the mode rules apply, as possible findings.
        Keyed by the receiver's text; its first mode call stands for the construction."""
        index = self.context.index
        evaluator = self.context.evaluator
        found: dict[str, OptimizerSite] = {}
        for site in index.calls:
            func = site.node.func
            if not (isinstance(func, cst.Attribute) and func.attr.value in ("train", "eval", "step")):
                continue
            text = _receiver_text(func.value, site)
            if text is None or text in found or not OPTIMIZER_NAME.search(text.lower()):
                continue
            where = Where(site.statement, site.function)
            if evaluator.optimizers(func.value, where).sites:
                continue
            built = self._inherited(dotted_name(func.value) or "", site)
            if built:
                found[text] = OptimizerSite(site.node, built[0].class_name, where, possible=built[0].possible,
                                            condition=built[0].condition)
            elif evidence and func.attr.value != "step" and evaluator.project is not None:
                found[text] = OptimizerSite(site.node, text, where, possible=True, condition=EVIDENCE)
        return found

    def _inherited(self, text: str, site: CallSite) -> tuple:
        project = self.context.evaluator.project
        class_name = site.function.class_name if site.function else None
        if project is None or class_name is None or not text.startswith("self.") or text.count(".") != 1:
            return ()
        bases = self.context.index.class_bases.get(class_name, [])
        return project.inherited_attribute(self.context.filename, bases, text[5:])

    def _mode_function(self, site: CallSite) -> tuple[str, Optimizers] | None:
        """`optimizer_eval_fn()`: a name bound to an optimizer's `eval`/`train` method (`opt.eval if
        is_sf else noop`), or named so when its value comes from elsewhere (a helper in another module)."""
        evaluator = self.context.evaluator
        where = Where(site.statement, site.function)
        origins, _ = evaluator.origins(site.node.func, where)
        for origin, place in origins:
            if isinstance(origin, cst.IfExp):
                origin = next((o for o in (origin.body, origin.orelse) if isinstance(o, cst.Attribute)), origin)
            if isinstance(origin, cst.Attribute) and origin.attr.value in ("train", "eval"):
                optimizers = evaluator.optimizers(origin.value, place)
                if optimizers.sites:
                    return origin.attr.value, optimizers
        name = site.node.func.value  # type: ignore[attr-defined]
        mode = MODE_FUNCTION.match(name.lower())
        if mode is None or not self.sites or name in self.context.index.functions_by_name:  # a local one is walked
            return None
        return mode.group("mode"), Optimizers(tuple(self.sites.values()), False)

    def _tied_models(self, site: OptimizerSite) -> frozenset[str]:
        """The model expressions whose parameters the optimizer updates (`model`, `self.net`, ...)."""
        params = site.params_argument()
        if params is None:
            return frozenset()
        texts = set()
        for text in self.gather(params, site.where.function, site.where.statement):
            parts = text.split(".")
            # `model.backbone.parameters()` ties `model` too; never plain `self` unless it is the model
            texts.update(".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) != "self")
            if text == "self":
                texts.add("self")
        return frozenset(texts)

    def _model_texts(self) -> frozenset[str]:
        """Expressions used as models anywhere: receivers of `.eval()`/`.train()`/`.parameters()`/`.state_dict()`."""
        texts = set()
        for site in self.context.index.calls:
            func = site.node.func
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value in ("eval", "train", "parameters", "named_parameters", "state_dict")
                and site.node not in self.receivers
                and (text := dotted_name(func.value))
            ):
                texts.add(text)
        return frozenset(texts)

    def _local_callees(self, site: CallSite) -> tuple[Function, ...]:
        """The functions of this module a call runs: `f()`, `self.m()`, `Trainer()` (its `__init__`),
        `trainer.m()` where `trainer = Trainer(...)`."""
        index = self.context.index
        func = site.node.func
        if isinstance(func, cst.Name):
            if func.value in self.classes:
                return self._methods(func.value, "__init__")
            return tuple(f for f in index.functions_by_name.get(func.value, []) if f.class_name is None)
        if not isinstance(func, cst.Attribute) or not isinstance(func.value, cst.Name):
            return ()
        receiver, method = func.value.value, func.attr.value
        if receiver == "self":
            class_name = site.function.class_name if site.function else None
            return self._methods(class_name, method) if class_name else ()
        if not any(f.class_name for f in index.functions_by_name.get(method, [])):
            return ()
        found, _ = index.reaching_bindings(receiver, site.statement, site.function)
        classes = {
            b.value.func.value
            for b in found
            if not b.loop_item and isinstance(b.value, cst.Call) and isinstance(b.value.func, cst.Name)
        }
        return tuple(f for name in classes & self.classes.keys() for f in self._methods(name, method))

    def _methods(self, class_name: str, name: str) -> tuple[Function, ...]:
        return tuple(f for f in self.context.index.functions_by_name.get(name, []) if f.class_name == class_name)

    # -- expressions -------------------------------------------------------------------------

    def gather(self, node: cst.BaseExpression, function: Function | None, statement: cst.CSTNode, depth: int = 0) -> frozenset[str]:
        """The dotted names an expression is built from, through assignments and the function's
        parameters: `accelerator.unwrap_model(model).state_dict()` -> {"accelerator", "model"}."""
        memo = (id(node), id(function))
        if depth == 0 and memo in self._gathered:
            return self._gathered[memo]
        found: set[str] = set()
        for text in chains(node):
            found.add(text)
            if depth >= MAX_GATHER_DEPTH:
                continue
            parts = text.split(".")
            head = ".".join(parts[:2]) if parts[0] == "self" and len(parts) > 1 else parts[0]
            for value, place_function, place in self._origins(head, function, statement):
                found |= {t + text[len(head):] for t in self.gather(value, place_function, place, depth + 1)}
        result = frozenset(found)
        if depth == 0:
            self._gathered[memo] = result
        return result

    def _origins(
        self, name: str, function: Function | None, statement: cst.CSTNode
    ) -> Iterator[tuple[cst.BaseExpression, Function | None, cst.CSTNode]]:
        """What a name was assigned, or the arguments a parameter gets at this module's call sites."""
        index = self.context.index
        if name.startswith("self."):
            class_name = function.class_name if function else None
            for binding in index.attributes.get((class_name, name[5:]), []):  # type: ignore[arg-type]
                yield _unpack(binding.value), index.function_of(binding.statement), binding.statement
            return
        bindings, _ = index.reaching_bindings(name, statement, function)
        for binding in bindings:
            yield _unpack(binding.value), function, binding.statement
        if function is not None and name in function.params and not bindings:
            names = [p for p in function.params if not (function.class_name and p in ("self", "cls"))]
            position = names.index(name) if name in names else None
            for site in self.callers.get(function, []):
                argument = Evaluator.argument(site.node, name, position)
                if argument is not None:
                    yield argument, site.function, site.statement

    @property
    def one_optimizer(self) -> bool:
        """The file trains one optimizer: one construction, or calls of one project factory (sd-scripts
        calls `get_optimizer` once per fused parameter group, or once in the other branch)."""
        return len({site.factory if site.built is not None else site.call for site in self.sites.values()}) == 1

    def keys_for_models(self, models: frozenset[str]) -> set[Key]:
        """The optimizers that train any of these model expressions."""
        calls = {call for call, tied in self.tied.items() if any(_same_model(m, t) for m in models for t in tied)}
        return {key for key in self.keys if key & calls}

    def concerned_keys(self, event: Event) -> set[Key]:
        keys = self.keys_for_models(event.models)
        if keys or event.kind == "recalibrate":
            return keys
        # nothing names a model (`accelerator.save_state(dir)`, `evaluate(args)`): with one optimizer
        # in the file, it is that one, unless the event names some other model
        tied = frozenset().union(*self.tied.values())
        if self.one_optimizer and (not (event.models & self.model_texts) or not (tied & self.model_texts)):
            # the only optimizer, and the event names no other model, or which model it trains is
            # unknown (built elsewhere, or from params collected in lists)
            return set(self.keys)
        return set()

    # -- functions ---------------------------------------------------------------------------

    def result(self, function: Function | None) -> FunctionResult | None:
        """Walk a function (None: the module's top level) once; None while it is being walked."""
        if function in self.results:
            return self.results[function]
        if function in self._in_progress or len(self._in_progress) > MAX_CALL_DEPTH:
            return None
        self._in_progress.add(function)
        walker = _Walker(self, function)
        body = function.node.body if function is not None else self.context.module
        exit_state = walker.run(_statements(body))
        self._in_progress.discard(function)
        self.results[function] = FunctionResult(exit_state, walker.events)
        self.events += walker.events
        return self.results[function]

    def always(self, event: Event, key: Key, mode: str) -> bool:
        """Every path reaches the event in `mode` in some context: on the iterations after the first of
        a loop around it, or from one of the calls of its function."""
        for state in (event.state, *event.later):
            facts = state.get(key, AT_ENTRY)
            options = self.entry_options(event.function, key) if ENTRY in facts else [frozenset()]
            if any(kinds((facts - AT_ENTRY) | option) == {mode} for option in options):
                return True
        return False

    def entry_options(self, function: Function | None, key: Key, seen: frozenset = frozenset()) -> list[Facts]:
        """The mode at a function's start from each of its calls taken alone (cf. `entry`, their join)."""
        if function is None or function in seen or not self.call_states.get(function):
            return [self.entry(function, key)]
        options = []
        for caller, state in self.call_states[function] + self.later_call_states.get(function, []):
            here = state.get(key, AT_ENTRY)
            if ENTRY not in here:
                options.append(here)
                continue
            options += [(here - AT_ENTRY) | o for o in self.entry_options(caller, key, seen | {function})]
        return options[:MAX_OPTIONS]

    def resolve(self, event: Event, key: object) -> Facts:
        """The facts for `key` at the event, with ENTRY replaced by what the callers pass in."""
        facts = event.state.get(key, AT_ENTRY)
        if ENTRY not in facts:
            return facts
        if key == BACKWARD:
            return (facts - AT_ENTRY) | CLEAN
        return (facts - AT_ENTRY) | self.entry(event.function, key)  # type: ignore[arg-type]

    def entry(self, function: Function | None, key: Key) -> Facts:
        memo = (function, key)
        if memo in self._entries:
            return self._entries[memo]
        unknown = frozenset({("unknown", None)})
        self._entries[memo] = unknown  # recursion: unknown
        states = self.call_states.get(function, []) if function is not None else []
        if function is None:
            facts = unknown
        elif not states:
            facts = self._uncalled_entry(key)
        else:
            facts = frozenset()
            for caller, state in states:
                here = state.get(key, AT_ENTRY)
                facts |= (here - AT_ENTRY) | (self.entry(caller, key) if ENTRY in here else frozenset())
        self._entries[memo] = facts
        return facts

    def _uncalled_entry(self, key: Key) -> Facts:
        """The mode a function that nothing in this module calls (a method called from outside, a
        framework hook) starts in: judged from what the file does to the optimizer anywhere."""
        modes = set()
        for event in self.events:
            if event.key is not None and event.key & key:
                if event.kind == "mode":
                    modes.add(event.mode)
                elif event.kind == "opaque":
                    return frozenset({("unknown", None)})
        if len(modes) == 2:
            return frozenset({("unknown", None)})
        starts_in_train = all(self.sites[c].initial_mode == "train" for c in key)
        if modes == {"train"} or (not modes and starts_in_train):
            return frozenset({("train", None)})
        return frozenset({("eval", None)})

    def has_own_logic(self, function: Function, event_kinds: tuple[str, ...], seen: frozenset = frozenset()) -> bool:
        """Whether a function (or a helper it calls) has events of these kinds or switches the mode itself."""
        result = self.results.get(function)
        if result is None or function in seen:
            return False
        if any(e.kind in event_kinds or e.kind == "mode" for e in result.events):
            return True
        return any(
            self.has_own_logic(callee, event_kinds, seen | {function})
            for e in result.events
            for callee in e.callees
        )

    def is_library_helper(self, function: Function | None) -> bool:
        """A module-level function of a project module that nothing in its file calls and that never
        touches an optimizer itself (`save_state_on_train_end(args, accelerator)`): its mode is its
        callers', which the project analysis sees at their calls."""
        return (
            self.context.evaluator.project is not None
            and function is not None
            and function.class_name is None
            and not self.call_states.get(function)
            and not any(self.function_of.get(call) is function for call in self.receivers)
        )

    def optimizers(self, key: Key) -> list[OptimizerSite]:
        return [self.sites[call] for call in key]

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


    def correlated_end(self, statements: list[cst.CSTNode], first: int) -> int | None:
        """Path correlation: for `if should_validate: eval()` ... `if should_validate: train()` in one block,
        the position of the second `if` (same call-free test, no else, its names not assigned between)."""
        head = statements[first]
        if not isinstance(head, cst.If) or head.orelse is not None:
            return None
        if any(isinstance(n, (cst.Call, cst.NamedExpr, cst.Await)) for n in descendants(head.test)):
            return None  # a call may answer differently the second time
        code = self.context.index.code
        names = {n.value for n in descendants(head.test) if isinstance(n, cst.Name)}
        for later in range(first + 1, min(len(statements), first + MAX_CORRELATED)):
            statement = statements[later]
            if isinstance(statement, cst.If) and statement.orelse is None and code(statement.test) == code(head.test):
                return later
            if names & self.assigned_names(statement):
                return None
        return None

    def assigned_names(self, statement: cst.CSTNode) -> frozenset[str]:
        """The names a statement assigns, anywhere inside it. Remembered per statement, and built from
        the statements inside it: blocks are walked again for loops and branches."""
        found = self._assigned.get(statement)
        if found is not None:
            return found
        names: set[str] = set()
        pending = [statement]
        while pending:
            node = pending.pop()
            if node is not statement and type(node) in STATEMENT_TYPES:
                names |= self.assigned_names(node)
                continue
            if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For)):
                names |= {n.value for n in descendants(node.target) if isinstance(n, cst.Name)}
            elif isinstance(node, cst.AsName):
                names |= {n.value for n in descendants(node.name) if isinstance(n, cst.Name)}
            pending.extend(child_nodes(node))
        found = self._assigned[statement] = frozenset(names)
        return found


class _Walker:
    """Walks one function's statements, carrying the state and recording events."""

    def __init__(self, analysis: ModeAnalysis, function: Function | None) -> None:
        self.a = analysis
        self.context = analysis.context
        self.function = function
        self.events: list[Event] = []
        self.exits: list[State] = []
        self.loops: list[_Loop] = []
        self.recording = RECORD
        self._recorded: dict[tuple, Event] = {}
        self.no_grad: list[cst.CSTNode] = []
        self.autocast: list[list[bool]] = []  # per autocast block: has a forward pass run in it
        self._loop_results: dict[tuple, tuple[State | None, tuple[bool, ...]]] = {}
        if function is not None:
            for decorator in function.node.decorators:
                target = decorator.decorator
                name = last_name(target.func if isinstance(target, cst.Call) else target)
                if name in NO_GRAD:
                    self.no_grad.append(decorator)

    def run(self, statements: list[cst.CSTNode]) -> State | None:
        end = self.block(statements, {})
        return join(*self.exits, end)

    # -- statements --------------------------------------------------------------------------

    def block(self, statements: list[cst.CSTNode], state: State | None) -> State | None:
        position = 0
        while position < len(statements):
            if state is None:
                return None
            second = self.a.correlated_end(statements, position)
            if second is None:
                state = self.statement(statements[position], state)
                position += 1
                continue
            state = self.correlated(statements[position : second + 1], state)
            position = second + 1
        return state

    def correlated(self, statements: list[cst.CSTNode], state: State) -> State | None:
        """Two `if`s with the same test and what lies between: events are recorded as usual (each
        statement walked once, branches joined), but the state after them follows the two paths
        apart, so that the second `if` undoes exactly what the first one did."""
        walked: State | None = state
        for statement in statements:
            walked = self.statement(statement, walked) if walked is not None else None
        first, *middle, second = statements
        recording, self.recording = self.recording, SKIP
        taken = self.block([*_statements(first.body), *middle, *_statements(second.body)], state)  # type: ignore[attr-defined]
        skipped = self.block(middle, state)
        self.recording = recording
        return join(taken, skipped)

    def statement(self, node: cst.CSTNode, state: State) -> State | None:
        if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            return self.simple(node, state)
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return state  # walked on its own
        state = self.calls(self.header_calls(node), state)
        if isinstance(node, cst.If):
            return self.branch(node, state)
        if isinstance(node, (cst.For, cst.While)):
            return self.memoized_loop(node, state)
        if isinstance(node, cst.With):
            return self.with_block(node, state)
        if isinstance(node, cst.Try) or type(node).__name__ == "TryStar":
            return self.try_block(node, state)  # type: ignore[arg-type]
        if type(node).__name__ == "Match":
            cases = [self.block(_statements(case.body), state) for case in node.cases]  # type: ignore[attr-defined]
            return join(state, *cases)
        return state

    def simple(self, node: cst.SimpleStatementLine | cst.SimpleStatementSuite, state: State) -> State | None:
        state = self.calls(self.a.calls_by_statement.get(node, []), state)
        for small in node.body:
            if isinstance(small, cst.Return):
                self.exits.append(state)
                return None
            if isinstance(small, cst.Raise):
                return None
            if isinstance(small, cst.Break) and self.loops:
                self.loops[-1].breaks.append(state)
                return None
            if isinstance(small, cst.Continue) and self.loops:
                self.loops[-1].continues.append(state)
                return None
        return state

    def header_calls(self, node: cst.CSTNode) -> list[CallSite]:
        """The calls a compound statement makes itself (its test, iterable, context managers)."""
        calls = self.a.calls_by_statement.get(node, [])
        suites = [s for s in _suites(node) if isinstance(s, cst.SimpleStatementSuite)]
        if not suites or not calls:
            return calls
        inside = {id(c) for suite in suites for c in descendants(suite) if isinstance(c, cst.Call)}
        return [c for c in calls if id(c.node) not in inside]

    def branch(self, node: cst.If, state: State) -> State | None:
        polarity = self.polarity(node.test)
        body = self.block(_statements(node.body), state) if polarity is not False else None
        if polarity is True:
            return body
        if isinstance(node.orelse, cst.If):
            other = self.statement(node.orelse, state)
        elif node.orelse is not None:
            other = self.block(_statements(node.orelse.body), state)
        else:
            other = state
        return join(body, other)

    def polarity(self, test: cst.BaseExpression) -> bool | None:
        """A test that holds exactly when the optimizer is ScheduleFree: only that branch runs here."""
        negated = False
        while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            negated, test = not negated, test.expression
        if HASATTR_MODE.search(self.context.index.code(test)):
            return not negated
        polarity = sf_test_polarity(self.context, test)
        return None if polarity is None else polarity != negated

    def loop(self, node: cst.For | cst.While, state: State) -> State | None:
        body = _statements(node.body)
        recording, self.recording = self.recording, SKIP
        head = state
        for _ in range(MAX_ITERATIONS):
            self.loops.append(_Loop())
            end = self.block(body, head)
            frame = self.loops.pop()
            following = join(state, end, *frame.continues)
            if following == head:
                break
            head = following  # type: ignore[assignment]
        self.recording = recording
        self.loops.append(_Loop())
        end = self.block(body, head)
        frame = self.loops.pop()
        again = join(end, *frame.continues)
        if recording != SKIP and again is not None:
            # the iterations after the first start from the back edge alone: an eval() at the end of
            # an epoch certainly reaches the step() at the top of the next one
            self.recording = LATER
            self.loops.append(_Loop())
            self.block(body, again)
            self.loops.pop()
            self.recording = recording
        # Training loops run at least once: the state after a loop is the state its body ends in
        # (counting zero iterations would make every check after an epoch loop uncertain).
        infinite = isinstance(node, cst.While) and self.context.index.code(node.test).strip() in ("True", "1")
        done = None if infinite else again
        if node.orelse is not None and done is not None:
            done = self.block(_statements(node.orelse.body), done)
        return join(done, *frame.breaks)

    def memoized_loop(self, node: cst.For | cst.While, state: State) -> State | None:
        """`loop`, walked once per entry state: each fixpoint pass over an outer loop walks the inner
        loops again, which made the time exponential in the nesting depth. Walks that record events
        are never skipped; a repeated fixpoint or later-iteration walk would only repeat what the
        first one recorded."""
        if self.recording == RECORD:
            return self.loop(node, state)
        memo = (node, self.recording, frozenset(state.items()), tuple(flags[0] for flags in self.autocast))
        if memo not in self._loop_results:
            done = self.loop(node, state)
            self._loop_results[memo] = (done, tuple(flags[0] for flags in self.autocast))
        done, forwarded = self._loop_results[memo]
        for flags, value in zip(self.autocast, forwarded):
            flags[0] = value  # a forward pass in the loop marks the autocast blocks around it
        return done

    def with_block(self, node: cst.With, state: State) -> State | None:
        pushed_no_grad = pushed_autocast = 0
        for item in node.items:
            call = item.item
            if not isinstance(call, cst.Call):
                continue
            name = last_name(call.func)
            grad_off = name == "set_grad_enabled" and self.context.index.code(call).replace(" ", "").endswith("(False)")
            if name in NO_GRAD or grad_off:
                self.no_grad.append(call)
                pushed_no_grad += 1
            elif name == "autocast":
                self.autocast.append([False])
                pushed_autocast += 1
        state = self.block(_statements(node.body), state)  # type: ignore[assignment]
        del self.no_grad[len(self.no_grad) - pushed_no_grad:]
        del self.autocast[len(self.autocast) - pushed_autocast:]
        return state

    def try_block(self, node: cst.Try, state: State) -> State | None:
        body = self.block(_statements(node.body), state)
        # an exception may leave the body anywhere: the handlers start from before or after it
        handler_entry = join(state, body)
        handlers = [self.block(_statements(h.body), handler_entry) for h in node.handlers]
        if node.orelse is not None:
            body = self.block(_statements(node.orelse.body), body)
        done = join(body, *handlers)
        if node.finalbody is not None:
            done = self.block(_statements(node.finalbody.body), done)
        return done

    # -- calls -------------------------------------------------------------------------------

    def calls(self, sites: list[CallSite], state: State) -> State:
        for site in sites:
            state = self.call(site, state)
        return state

    def record(self, event: Event) -> None:
        if self.recording == RECORD:
            self.events.append(event)
            self._recorded[(event.node, event.kind, event.key)] = event
        elif self.recording == LATER:
            primary = self._recorded.get((event.node, event.kind, event.key))
            if primary is not None:
                primary.later.append(event.state)

    def call(self, site: CallSite, state: State) -> State:
        a = self.a
        node = site.node
        func = node.func
        name = last_name(func) or ""
        if node in a.receivers:
            return self.optimizer_call(site, a.mode_functions.get(node, name), state)
        if node in a.sites:
            initial = a.sites[node].initial_mode
            return {**state, **{key: frozenset({(initial, node)}) for key in a.keys if node in key}}
        if (averager := ema_update(self.context, site)) is not None:
            self.record_ema(site, state, *averager)
        callees = a.callees.get(node)
        if callees:
            return self.local_call(site, callees, name, state)
        if isinstance(func, cst.Attribute) and name in ("train", "eval"):
            text = dotted_name(func.value)
            if text and OPTIMIZER_NAME.search(text.lower()):  # an optimizer this analysis cannot follow
                return self.opaque(site, state, set(a.keys))
            if text:
                off = name == "train" and node.args and self.context.index.code(node.args[0].value) == "False"
                return {**state, ("model", text): frozenset({("eval" if off else name, node)})}
            return state
        if name == "backward":
            return {**state, BACKWARD: frozenset({("backward", node)})}
        if name == "zero_grad":
            return {**state, BACKWARD: CLEAN}
        helper = self.context.evaluator.project_helper(node)
        if helper is not None:
            return self.project_call(site, *helper, state)
        passed = self.optimizer_arguments(site)
        if not passed:
            self.evaluation_or_save(site, name, state)
        elif self.may_switch_mode(site, name):
            return self.opaque(site, state, passed)
        return state

    def record_ema(self, site: CallSite, state: State, averager: cst.CSTNode, where: Where) -> None:
        """An EMA/SWA update: it averages what the model holds now (`y` in train mode)."""
        models = self.a.gather(site.node, self.function, site.statement)
        models |= self.a.gather(averager, where.function, where.statement)
        self.record(Event("ema", site.node, self.function, state, region=site.node, models=models))

    def may_switch_mode(self, site: CallSite, name: str) -> bool:
        """A call handed the optimizer that may switch its mode: a framework that runs the training
        (HF Trainer, Lightning) or project code this analysis cannot see. A library call it cannot
        see (`log_lr(opt)`, `save_checkpoint(model, opt)`) leaves the mode alone."""
        if name in MODE_PRESERVING or is_scheduler(site.qualname) or "schedul" in name.lower():
            return False
        qualname = site.qualname or ""
        return (
            self.context.evaluator.project is None
            or self.context.evaluator.in_project(site.node)
            or qualname.startswith(FRAMEWORKS)
            or name.endswith("Trainer")
            or name in ("fit", "initialize")
            or SWITCHING_NAME.search(name.lower()) is not None  # `prepare_modes(opt)`, `set_train(opt)`
        )

    def project_call(self, site: CallSite, helper: Helper, saves: tuple[tuple[str, str], ...], state: State) -> State:
        """A function of another module of the project: its saves and evaluations happen here, and it
        leaves the optimizers it is handed in the mode it switched them to."""
        node = site.node
        if not helper.handles_mode and (saves or helper.evaluates):
            related = tuple(Related("saved here", file, Location(row_of(file, line), 1)) for file, line in saves[:1])
            self.record(
                Event("save" if saves else "evaluate", node, self.function, state, region=node,
                      models=self.a.gather(node, self.function, site.statement), related=related)
            )
        where = Where(site.statement, self.function)
        for parameter, mode in helper.modes:
            position = helper.params.index(parameter) if parameter in helper.params else None
            argument = Evaluator.argument(node, parameter, position)
            if argument is None:
                continue
            calls = {s.call for s in self.context.evaluator.optimizers(argument, where).sites}
            for key in [k for k in self.a.keys if k & calls]:
                state = self.assign(state, key, frozenset({(mode, node)}))
        return state

    def optimizer_call(self, site: CallSite, method: str, state: State) -> State:
        key, _ = self.a.receivers[site.node]
        if method in ("step", "step_func"):
            self.record(Event("step", site.node, self.function, state, key=key))
            return {**state, BACKWARD: CLEAN}
        if method == "load_state_dict":
            self.record(Event("load", site.node, self.function, state, key=key))
            if all(self.a.sites[c].is_wrapper for c in key):
                return state  # the wrappers keep train_mode outside the state dict
            return self.assign(state, key, frozenset({("loaded", site.node)}))
        in_autocast_after_forward = any(flag[0] for flag in self.autocast)
        self.record(
            Event("mode", site.node, self.function, state, key=key, mode=method,
                  in_autocast_after_forward=in_autocast_after_forward)
        )
        facts = frozenset({(method, site.node)})
        if site.node in self.a.mode_functions and self.a.one_optimizer:
            # `optimizer_eval_fn()` switches the file's one optimizer, whichever call built it
            return {**state, **{other: facts for other in self.a.keys if other <= key}}
        return self.assign(state, key, facts)

    def assign(self, state: State, key: Key, facts: Facts) -> State:
        """Set the mode of `key`; other expressions that may hold one of its optimizers may now have it."""
        state = dict(state)
        for other in self.a.keys:
            if other == key:
                state[other] = facts
            elif other & key:
                state[other] = state.get(other, AT_ENTRY) | facts
        return state

    def local_call(self, site: CallSite, callees: tuple[Function, ...], name: str, state: State) -> State:
        if self.recording != SKIP:
            states = self.a.call_states if self.recording == RECORD else self.a.later_call_states
            for callee in callees:
                states.setdefault(callee, []).append((self.function, state))
        if EVALUATION_NAME.match(name) or name in SAVE_METHODS:
            kind = "save" if name in SAVE_METHODS else "evaluate"
            self.record(
                Event(kind, site.node, self.function, state, region=site.node,
                      models=self.a.gather(site.node, self.function, site.statement), callees=callees)
            )
        exits = []
        for callee in callees:
            result = self.a.result(callee)
            if result is not None and result.exit is not None:
                exits.append(result.exit)
        if not exits:
            return state
        state = dict(state)
        for key in self.a.keys:
            joined = frozenset().union(*(e.get(key, AT_ENTRY) for e in exits))
            before = state.get(key, AT_ENTRY)
            state[key] = (joined - AT_ENTRY) | (before if ENTRY in joined else frozenset())
        return state

    def opaque(self, site: CallSite, state: State, keys: set[Key]) -> State:
        state = dict(state)
        for key in keys:
            self.record(Event("opaque", site.node, self.function, state, key=key))
            state[key] = frozenset({("unknown", site.node)})
        return state

    def optimizer_arguments(self, site: CallSite) -> set[Key]:
        """The optimizers a call is handed as arguments (`Trainer(optimizers=(opt, None))`)."""
        keys: set[Key] = set()
        where = Where(site.statement, site.function)
        for argument in site.node.args:
            for chain in _chain_nodes(argument.value, calls=False):
                if OPTIMIZER_NAME.search((dotted_name(chain) or "").lower()):
                    calls = {s.call for s in self.context.evaluator.optimizers(chain, where).sites}
                    keys |= {k for k in self.a.keys if k & calls}
        return keys

    def evaluation_or_save(self, site: CallSite, name: str, state: State) -> None:
        node = site.node
        if (
            isinstance(node.func, cst.Name)
            and name != "eval"
            and EVALUATION_NAME.match(name)
            and not (site.qualname or "").startswith(("torch.", "numpy.", "random."))
        ):
            models = self.a.gather(node, self.function, site.statement)
            self.record(Event("evaluate", node, self.function, state, region=node, models=models))
            return
        if name in SAVE_METHODS or (name == "save" and node.args):
            models = self.a.gather(node, self.function, site.statement)
            if name == "save" and not self.a.keys_for_models(models):
                return  # torch.save of something else than the trained model's weights
            self.record(Event("save", node, self.function, state, region=node, models=models))
            return
        forward = self.forward_model(site)
        if forward is None:
            return
        model, models = forward
        for flags in self.autocast:
            flags[0] = True
        model_mode = state.get(("model", model), AT_ENTRY)
        kinds = {kind for kind, _ in model_mode}
        if kinds == {"eval"} and (self.no_grad or not self.trains_alongside(site)):
            region = min((origin for _, origin in model_mode), key=lambda n: self.a.order.get(n, 0))
            self.record(Event("evaluate", node, self.function, state, region=region, models=models))
        elif self.no_grad and kinds == {"train"}:
            self.record(Event("recalibrate", node, self.function, state, region=self.no_grad[-1], models=models))
        elif self.no_grad:
            self.record(Event("evaluate", node, self.function, state, region=self.no_grad[-1], models=models))

    def trains_alongside(self, site: CallSite) -> bool:
        """A forward pass in a loop (or function) that also calls backward(): training with the model
        in eval mode (BatchNorm statistics or dropout frozen on purpose), not an evaluation."""
        index = self.context.index
        scope = next(
            (s for s in index.enclosing_statements(site.statement) if isinstance(s, (cst.For, cst.While, cst.FunctionDef))),
            None,
        )
        return any(
            last_name(other.node.func) == "backward"
            and (index.within(other.statement, scope) if scope is not None else other.function is None)
            for other in index.calls
        )

    def forward_model(self, site: CallSite) -> tuple[str, frozenset[str]] | None:
        """The model a call runs (`model(x)`, `self.net.generate(...)`, `ddp_model(x)`), if an SF optimizer trains it."""
        func = site.node.func
        candidates = [func]
        if isinstance(func, cst.Attribute) and func.attr.value in FORWARD_METHODS:
            candidates.append(func.value)
        for candidate in candidates:
            text = dotted_name(candidate)
            if text is None:
                continue
            gathered = self.a.gather(candidate, self.function, site.statement) | {text}
            if any(g in tied for g in gathered for tied in self.a.tied.values()):
                return text, gathered
        if (
            self.no_grad
            and len(candidates) == 2
            and not any(self.a.tied.values())
            and self.function is not None
            and EVALUATING_FUNCTION.search(self.function.name.lower())
        ):
            # an optimizer built elsewhere trains an unknown model: in a validation function,
            # `model_setup.predict(model, batch)` under no_grad is the evaluation
            text = dotted_name(candidates[1]) or ""
            return text, self.a.gather(site.node, self.function, site.statement)
        return None


# -- helpers -------------------------------------------------------------------------------------


def _receiver_text(node: cst.BaseExpression, site: CallSite) -> str | None:
    """`optimizer`, or `Trainer:self.optimizer`: `self` means another object in each class."""
    text = dotted_name(node)
    if text is not None and text.split(".")[0] == "self" and site.function is not None and site.function.class_name:
        return f"{site.function.class_name}:{text}"
    return text


def join(*states: State | None) -> State | None:
    present = [s for s in states if s is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    keys = set().union(*present)
    return {key: frozenset().union(*(s.get(key, AT_ENTRY) for s in present)) for key in keys}


def _chain_nodes(node: cst.CSTNode, calls: bool = True) -> Iterator[cst.BaseExpression]:
    """The maximal dotted names in an expression; for `a.b.m(x)` the receiver `a.b` and `x`."""
    if isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) is not None:
        yield node
        return
    if isinstance(node, cst.Call):
        if not calls:
            return
        if isinstance(node.func, cst.Attribute):
            yield from _chain_nodes(node.func.value)
        elif not isinstance(node.func, cst.Name):
            yield from _chain_nodes(node.func)
        for argument in node.args:
            yield from _chain_nodes(argument.value)
        return
    if isinstance(node, (cst.Lambda, cst.FunctionDef)):
        return
    for child in child_nodes(node):
        yield from _chain_nodes(child, calls)


def chains(node: cst.CSTNode) -> Iterator[str]:
    for chain in _chain_nodes(node):
        yield dotted_name(chain)  # type: ignore[misc]


def _unpack(value: cst.BaseExpression | Unpacked) -> cst.BaseExpression:
    """`a, b = accelerator.prepare(x, y)`: b is y; other unpacked values stand for the whole value."""
    while isinstance(value, Unpacked):
        inner = value.value
        if isinstance(inner, cst.Call) and last_name(inner.func) in PASS_THROUGH and value.position < len(inner.args):
            return inner.args[value.position].value
        value = inner
    return value


def _same_model(text: str, tied: str) -> bool:
    """`model.module` is the tied `model`; `model` holds the tied `model.head`."""
    return text == tied or text.startswith(tied + ".") or (tied.startswith(text + ".") and text != "self")


def _statements(suite: cst.CSTNode) -> list[cst.CSTNode]:
    if isinstance(suite, cst.Module):
        return list(suite.body)
    if isinstance(suite, cst.IndentedBlock):
        return list(suite.body)
    if isinstance(suite, cst.SimpleStatementSuite):
        return [suite]
    return []


def _suites(node: cst.CSTNode) -> list[cst.CSTNode]:
    suites = [getattr(node, "body", None), getattr(getattr(node, "orelse", None), "body", None)]
    suites += [h.body for h in getattr(node, "handlers", ())]
    finalbody = getattr(node, "finalbody", None)
    suites.append(finalbody.body if finalbody is not None else None)
    return [s for s in suites if isinstance(s, cst.BaseSuite)]


def mode_setup(context: FileContext) -> ModeAnalysis:
    """The optimizers and the calls on them, nothing walked yet."""
    return ModeAnalysis(context)


def mode_analysis(context: FileContext) -> ModeAnalysis:
    analysis = context.analysis(mode_setup)
    analysis.walk()
    return analysis


def kinds(facts: Facts) -> set[str]:
    return {kind for kind, _ in facts}


def settled(facts: Facts) -> bool:
    """Facts the rules can judge: no path the analysis lost track of (an unknown caller, a load)."""
    return not kinds(facts) & {"unknown", "loaded", "entry"}


@dataclass(frozen=True)
class ModeReport:
    node: cst.CSTNode
    possible: bool
    related: tuple[Related, ...]
    keys: frozenset[Key]  # the optimizers in train mode there
    models: frozenset[str]  # the model expressions the evaluation or save is about
    notes: tuple[str, ...] = ()  # when the optimizer is ScheduleFree only on some paths


def conditions(analysis: ModeAnalysis, keys: frozenset[Key] | set[Key]) -> tuple[str, ...]:
    """Notes for optimizers that are ScheduleFree only on some paths: which test selects one, and
    where another module builds it."""
    notes = []
    for key in keys:
        for call in key:
            site = analysis.sites[call]
            built = site.built
            where = f" ({built.filename}:{built.row})" if built is not None and built.row else ""
            if site.condition == EVIDENCE:
                notes.append(f"`{site.class_name}` is built elsewhere; the code calls train()/eval() on it, "
                             "so it is taken to be ScheduleFree")
            elif site.factory == CONFIG:
                notes.append(f"the optimizer is built from a config, and {site.condition}")
            elif site.condition:
                notes.append(f"{site.class_name}{where} is chosen only when `{site.condition}`")
            elif site.possible:
                notes.append(f"{site.class_name}{where} is one of the optimizers this code may build")
    return tuple(dict.fromkeys(notes))


def mode_reports(context: FileContext, kind: str) -> list[ModeReport]:
    """Evaluations (kind "evaluate") or saves ("save") reached while a ScheduleFree optimizer is in
    train mode: one report per place the evaluation starts (`model.eval()`, `torch.no_grad()`, the call)."""
    analysis = context.analysis(mode_analysis)
    regions: dict[cst.CSTNode, list[tuple[bool, Facts, Key, frozenset[str]]]] = {}
    helper_saves: dict[cst.CSTNode, tuple[Related, ...]] = {}
    for event in analysis.events_of(kind):
        if any(analysis.has_own_logic(callee, ("evaluate", "save")) for callee in event.callees):
            continue  # the helper is analysed on its own
        if analysis.is_library_helper(event.function):
            continue  # judged at its calls, in the modules that call it
        for key in analysis.concerned_keys(event):
            if all(analysis.sites[call].is_closure for call in key):
                continue
            facts = analysis.resolve(event, key)
            if "train" in kinds(facts) and settled(facts):
                possible = not analysis.always(event, key, "train") or any(analysis.sites[c].possible for c in key)
                regions.setdefault(event.region or event.node, []).append((possible, facts, key, event.models))
                helper_saves[event.region or event.node] = event.related
    reports = []
    for region, found in regions.items():
        origins = {origin for _, facts, _, _ in found for kind, origin in facts if kind == "train" and origin is not None}
        related = helper_saves.get(region, ()) + tuple(
            context.related("put in train mode here", origin)
            for origin in sorted(origins, key=lambda n: analysis.order.get(n, 0))[:2]
        )
        reports.append(
            ModeReport(
                region,
                all(possible for possible, _, _, _ in found),
                related,
                frozenset(key for _, _, key, _ in found),
                frozenset().union(*(models for _, _, _, models in found)),
                conditions(analysis, {key for _, _, key, _ in found}),
            )
        )
    return reports


# -- HF Trainer ------------------------------------------------------------------------------------

TRAINER_OPTIMS = ("schedule_free_adamw", "schedule_free_sgd", "schedule_free_radam")


@dataclass(frozen=True)
class TrainerArguments:
    """`TrainingArguments(optim=...)` (or a subclass: Seq2SeqTrainingArguments, trl's *Config)."""

    call: cst.Call
    where: Where
    optim: tuple[str, ...]  # the values `optim` may take
    optim_known: bool  # every path was followed


def trainer_arguments(context: FileContext) -> list[TrainerArguments]:
    found = []
    for site in context.index.calls:
        name = last_name(site.node.func) or ""
        qualname = site.qualname or ""
        if not (name.endswith("TrainingArguments") or (qualname.startswith("trl.") and name.endswith("Config"))):
            continue
        optim = Evaluator.argument(site.node, "optim", None)
        if optim is None:
            continue
        where = Where(site.statement, site.function)
        if isinstance(optim, cst.Attribute) and (dotted_name(optim.value) or "").endswith("OptimizerNames"):
            values, known = (optim.attr.value.lower(),), True
        else:
            evaluated = context.evaluator.values(optim, where)
            values = tuple(str(v.value if hasattr(v, "value") else v) for v in evaluated.options)
            known = evaluated.complete
        found.append(TrainerArguments(site.node, where, values, known))
    return found
