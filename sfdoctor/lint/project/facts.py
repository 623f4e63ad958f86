"""What one module tells the rest of the project: the per-file summary, small and picklable.

Worker processes compute a `ModuleSummary` next to the file's findings; only summaries (never
parsed modules) cross the process boundary, and the project view links them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# The condition of an optimizer known only from its use (`optimizer.train()` on something built elsewhere).
EVIDENCE = "train()/eval() are called on it"

# `Built.path` steps: an element of a returned tuple (int) or a key / attribute of a returned dict,
# dataclass or object (str).
PathStep = int | str


@dataclass(frozen=True)
class Built:
    """A ScheduleFree optimizer that a project function hands back or that an attribute holds."""

    path: tuple[PathStep, ...]  # () the value itself; (2,) element 2 of it; ("optimizer",) its key
    class_name: str
    possible: bool  # only on some paths (a flag, a registry, a class chosen by name)
    condition: str | None  # the test that selects it, for messages (`args.optimizer_type.endswith(...)`)
    mode: str | None  # "train" / "eval" when the function leaves it so on every path
    filename: str
    row: int  # where it is built
    params: tuple[int | None, str | None] | None = None  # the factory parameter that becomes its params


@dataclass(frozen=True)
class Helper:
    """What calling a project function does to the training around the call."""

    params: tuple[str, ...]  # positional parameters, without self/cls
    saves: tuple[tuple[str, str], ...] = ()  # (filename, the call's first line) of the saves it makes itself
    evaluates: bool = False
    handles_mode: bool = False  # it switches an optimizer's mode itself (train()/eval(), an eval_fn)
    modes: tuple[tuple[str, str], ...] = ()  # (parameter, the mode the function leaves it in)
    calls: tuple[str, ...] = ()  # absolute names of what it calls, for saves made further down
    fractions: tuple[str, ...] = ()  # parameters it converts from a fraction of the run (`if w <= 1: w *= total`)


def parameter_of(keyword: str | None, position: int | None, params: Sequence[str]) -> str | None:
    """The parameter an argument handed over (`Passed`, `Setting`) binds: its keyword, or the positional
    parameter at its position (params without self/cls)."""
    if keyword is not None:
        return keyword
    return params[position] if position is not None and position < len(params) else None


@dataclass(frozen=True)
class Passed:
    """A ScheduleFree optimizer handed to a function of another module: `get_swa(args, model, optimizer)`."""

    callee: str  # absolute name of the function called
    position: int | None  # the argument's position, or None for a keyword argument
    keyword: str | None
    built: Built


@dataclass(frozen=True)
class Setting:
    """A warm-up setting handed to a function of another module:
    `create_lr_scheduler(warmup_steps=self.config.learning_rate_warmup_steps)`."""

    callee: str  # absolute name of the function called
    position: int | None
    keyword: str | None
    attribute: str  # the setting's name: the argument's last attribute (`learning_rate_warmup_steps`)
    filename: str
    row: int


@dataclass(frozen=True)
class ClassFacts:
    bases: tuple[str, ...]  # absolute names
    schedulefree: bool  # a subclass of a ScheduleFree class (a registered or customised optimizer)
    attributes: dict[str, tuple[Built, ...]] = field(default_factory=dict)  # self.x holding one
    optimizer: Built | None = None  # the ScheduleFree optimizer its own configure_optimizers returns
    # (method, the modes it switches an optimizer to) for its methods that switch one, and for the Lightning
    # hooks it defines that switch none without calling the base class's: they hide a base class's hook
    methods: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ModuleSummary:
    filename: str
    module: str
    imports: dict[str, str]  # local name -> absolute dotted name
    built: dict[str, tuple[Built, ...]]  # "function" / "Class.method" -> what it returns
    helpers: dict[str, Helper]
    classes: dict[str, ClassFacts]
    trains: bool = False  # it steps or switches a ScheduleFree optimizer: the helpers it imports matter
    uses: tuple[str, ...] = ()  # absolute names of the imported functions and classes it calls
    passes: tuple[Passed, ...] = ()  # optimizers it hands to functions it imports
    warmups: tuple[Setting, ...] = ()  # warm-up settings it hands to functions it imports
