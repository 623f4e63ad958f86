"""The project view: module names for the linted files, and the linked summaries rules ask about.

Imports are resolved to the project's own files the way Python would find them from the usual
layouts: a module's name comes from its packages (folders with `__init__.py`), and because scripts
are run from different folders (`src/` layouts, `sys.path` tricks, namespace packages) every
trailing part of its path is a name too (`library/train_util.py` is `library.train_util` and
`train_util`). Where several files share a name, the one nearest the importing file wins.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .facts import EVIDENCE, Built, ClassFacts, Helper, ModuleSummary, Passed, Setting, parameter_of

MAX_ALIAS_HOPS = 8  # re-exports followed through __init__.py files
MAX_NAME_PARTS = 6
# bases outside the project that define no Lightning hook: they leave a LightningModule's behaviour known
HOOKLESS_BASES = ("abc.", "typing.", "torch.", "object")


@dataclass(frozen=True)
class LightningClass:
    """A LightningModule whose configure_optimizers (its own or a base class's) returns a ScheduleFree optimizer, or
    whose methods switch the optimizer's mode (evidence from use)."""

    optimizer: Built
    methods: dict[str, tuple[str, ...]]  # what its methods, own or inherited, switch an optimizer to
    certain: bool  # no base class outside the project (other than LightningModule) may add hooks


def module_names(files: list[tuple[Path, str]]) -> dict[str, str]:
    """Display name -> dotted module name, from the packages around each file."""
    is_package: dict[Path, bool] = {}

    def package(folder: Path) -> bool:
        if folder not in is_package:
            is_package[folder] = (folder / "__init__.py").is_file()
        return is_package[folder]

    names = {}
    for path, display in files:
        # a notebook keeps its suffix: no import names it, so it never stands for `train` next to train.py
        parts = [] if path.name == "__init__.py" else [path.name.removesuffix(".py")]
        folder = path.parent
        while package(folder) and folder != folder.parent:
            parts.insert(0, folder.name)
            folder = folder.parent
        names[display] = ".".join(parts) or path.parent.name
    return names


@dataclass
class ProjectView:
    """Rules and analyses ask it about names that another module of the project defines."""

    modules: dict[str, str]  # display name -> dotted module name
    summaries: dict[str, ModuleSummary] = field(default_factory=dict)
    configured: tuple[tuple[str, str, int], ...] = ()  # (ScheduleFree name, config file, row) in configs
    _table: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _passed: dict[tuple[str, str], list[Passed]] | None = field(default=None, repr=False)
    _files: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)  # module_file's answers
    _subclassed: set[tuple[str, str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._table:
            return  # shared with the view this one extends
        for display, module in self.modules.items():
            names = {module}
            parts = display.removesuffix(".py").split("/")
            if parts[-1] == "__init__":
                parts.pop()
            names |= {".".join(parts[start:]) for start in range(max(0, len(parts) - MAX_NAME_PARTS), len(parts))}
            for name in names - {""}:
                self._table.setdefault(name, []).append(display)

    def digest(self) -> str:
        """Changes whenever what a file may learn from the project changes (module names, summaries)."""
        summaries = sorted(
            (d, s.module, s.imports, s.built, s.helpers, s.classes, s.passes, s.warmups)
            for d, s in self.summaries.items()
        )
        # repr, not pickle: pickle's bytes depend on which equal objects happen to be shared
        return hashlib.sha256(repr((sorted(self.modules.items()), summaries, self.configured)).encode()).hexdigest()

    @cached_property
    def fraction_settings(self) -> dict[str, tuple[Setting, str]]:
        """Warm-up settings that a project function reads as a fraction of the run, by name
        (`learning_rate_warmup_steps`): the call that hands one over, and the function."""
        found: dict[str, tuple[Setting, str]] = {}
        for summary in self.summaries.values():
            for setting in summary.warmups:
                located = self.locate(summary.filename, setting.callee)
                helper = located[0].helpers.get(located[1]) if located is not None else None
                if helper is None:
                    continue
                if parameter_of(setting.keyword, setting.position, helper.params) in helper.fractions:
                    found.setdefault(setting.attribute, (setting, f"{located[1]}() in {located[0].filename}"))
        return found

    def passed_to(self, filename: str, function: str) -> list[Passed]:
        """The ScheduleFree optimizers other modules hand to `function` of `filename`."""
        if self._passed is None:
            self._passed = {}
            for summary in self.summaries.values():
                for passed in summary.passes:
                    found = self.locate(summary.filename, passed.callee)
                    if found is not None:
                        self._passed.setdefault((found[0].filename, found[1]), []).append(passed)
        return self._passed.get((filename, function), [])

    def with_summaries(self, summaries: dict[str, ModuleSummary]) -> ProjectView:
        return ProjectView(self.modules, {**self.summaries, **summaries}, self.configured, self._table, None, self._files)

    # -- names -------------------------------------------------------------------------------

    def absolute(self, importer: str, dotted: str) -> str:
        """`.util.f` imported in `pkg/train.py` -> `pkg.util.f`."""
        if not dotted.startswith("."):
            return dotted
        level = len(dotted) - len(dotted.lstrip("."))
        module = self.modules.get(importer, "").split(".")
        is_init = importer.endswith("__init__.py")
        base = module[: len(module) - level + (1 if is_init else 0)] if module != [""] else []
        return ".".join([*base, dotted[level:]]) if dotted[level:] else ".".join(base)

    def locate(self, importer: str, qualname: str) -> tuple[ModuleSummary, str] | None:
        """The summarised module that defines `qualname` and the name inside it (`f`, `Class.m`)."""
        dotted = self.absolute(importer, qualname)
        for _ in range(MAX_ALIAS_HOPS):
            found = self._split(dotted, importer)
            if found is None:
                return None
            summary, rest = found
            head = rest.split(".")[0]
            if rest in summary.built or rest in summary.helpers or head in summary.classes:
                return summary, rest
            if head not in summary.imports:
                return None
            # a re-export (`from .optim import create_optimizer` in __init__.py)
            importer, dotted = summary.filename, ".".join([summary.imports[head], *rest.split(".")[1:]])
        return None

    def module_file(self, importer: str, dotted: str) -> str | None:
        """The project file an import names (`pkg.mod`, or `pkg.mod.f` from `from pkg.mod import f`)."""
        if (importer, dotted) not in self._files:
            self._files[importer, dotted] = self._module_file(importer, dotted)
        return self._files[importer, dotted]

    def _module_file(self, importer: str, dotted: str) -> str | None:
        parts = self.absolute(importer, dotted).split(".")
        for cut in range(len(parts), 0, -1):
            candidates = self._table.get(".".join(parts[:cut]))
            if candidates:
                return max(candidates, key=lambda f: _shared_folders(f, importer))
        return None

    def defines(self, importer: str, qualname: str) -> bool:
        """Whether `qualname` lies in a module of the project (summarised or not)."""
        parts = self.absolute(importer, qualname).split(".")
        return any(".".join(parts[:cut]) in self._table for cut in range(len(parts) - 1, 0, -1))

    def _split(self, dotted: str, importer: str) -> tuple[ModuleSummary, str] | None:
        """The longest leading part of `dotted` that names a summarised module, and the rest."""
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            candidates = [f for f in self._table.get(".".join(parts[:cut]), []) if f in self.summaries]
            if candidates:
                nearest = max(candidates, key=lambda f: _shared_folders(f, importer))
                return self.summaries[nearest], ".".join(parts[cut:])
        return None

    # -- facts -------------------------------------------------------------------------------

    def built(self, importer: str, qualname: str) -> tuple[Built, ...]:
        """The ScheduleFree optimizers a call of `qualname` hands back: a factory function, or a
        project class that subclasses a ScheduleFree class."""
        found = self.locate(importer, qualname)
        if found is None:
            return ()
        summary, name = found
        if name in summary.built:
            return summary.built[name]
        facts = summary.classes.get(name)
        if facts is not None and self.is_schedulefree_class(summary, name):
            return (Built((), name, False, None, None, summary.filename, 0),)
        return ()

    def is_schedulefree_class(self, summary: ModuleSummary, name: str, depth: int = 0) -> bool:
        facts = summary.classes.get(name)
        if facts is None or depth > MAX_ALIAS_HOPS:
            return False
        if facts.schedulefree:
            return True
        for base in facts.bases:
            found = self.locate(summary.filename, base)
            if found is not None and self.is_schedulefree_class(found[0], found[1], depth + 1):
                return True
        return False

    def helper(self, importer: str, qualname: str) -> tuple[Helper, tuple[tuple[str, str], ...]] | None:
        """A project function and the saves it makes, itself or through the project functions it calls."""
        found = self.locate(importer, qualname)
        if found is None or found[1] not in found[0].helpers:
            return None
        summary, name = found
        return summary.helpers[name], self._saves(summary, name, frozenset())

    def _saves(self, summary: ModuleSummary, name: str, seen: frozenset) -> tuple[tuple[str, str], ...]:
        helper = summary.helpers[name]
        if helper.handles_mode or (summary.filename, name) in seen or len(seen) > MAX_ALIAS_HOPS:
            return ()
        if helper.saves:
            return helper.saves
        seen = seen | {(summary.filename, name)}
        for call in helper.calls:
            found = self.locate(summary.filename, call)
            if found is not None and found[1] in found[0].helpers:
                deeper = self._saves(found[0], found[1], seen)
                if deeper:
                    return deeper
        return ()

    def lightning(self, filename: str, name: str, classes: dict[str, ClassFacts]) -> LightningClass | None:
        """Class `name` of `filename` (whose classes are `classes`) as a LightningModule, with what it
        inherits from the project's base classes: the nearest definition of each method wins."""
        methods: dict[str, tuple[str, ...]] = {}
        optimizer, reaches, certain = None, False, True
        pending = [(filename, name, classes)]
        for _ in range(MAX_ALIAS_HOPS * 4):
            if not pending:
                break
            where, base, local = pending.pop(0)
            found = (where, base, local) if base in local else self._class(where, base)
            if found is None:
                reaches |= base.rsplit(".", 1)[-1] == "LightningModule"
                certain &= base.startswith(HOOKLESS_BASES) or base.rsplit(".", 1)[-1] == "LightningModule"
                continue
            where, base, local = found
            facts = local[base]
            if "configure_optimizers" in dict(facts.methods) and "configure_optimizers" not in methods:
                optimizer = facts.optimizer
            for method, modes in facts.methods:
                methods.setdefault(method, modes)
            pending[:0] = [(where, b, local) for b in facts.bases]  # depth first, left to right, like most MROs
        if optimizer is None and any(methods.values()):
            # evidence from use: it switches the optimizer Lightning hands it (`self.optimizers().eval()`), which
            # configure_optimizers builds from something this analysis cannot see (a config, a plain factory)
            optimizer = Built((), "its optimizer", True, EVIDENCE, None, filename, 0)
        return LightningClass(optimizer, methods, certain) if reaches and optimizer is not None else None

    def lightning_named(self, importer: str, qualname: str) -> LightningClass | None:
        """The LightningModule an import names (`from .lightning import NequIPLightningModule`)."""
        found = self._class(importer, qualname)
        return self.lightning(*found) if found is not None else None

    def _class(self, importer: str, qualname: str) -> tuple[str, str, dict[str, ClassFacts]] | None:
        """The file that defines a project class, its name there, and the file's classes."""
        found = self.locate(importer, qualname)
        if found is None or found[1] not in found[0].classes:
            return None
        return found[0].filename, found[1], found[0].classes

    def subclassed(self, filename: str, name: str) -> bool:
        """Whether a summarised class of the project subclasses class `name` of `filename`."""
        if self._subclassed is None:
            self._subclassed = set()
            for summary in self.summaries.values():
                for facts in summary.classes.values():
                    for base in facts.bases:
                        if base in summary.classes:
                            self._subclassed.add((summary.filename, base))
                        elif (found := self.locate(summary.filename, base)) is not None:
                            self._subclassed.add((found[0].filename, found[1]))
        return (filename, name) in self._subclassed

    def inherited_attribute(self, importer: str, bases: list[str], attribute: str) -> tuple[Built, ...]:
        """`self.optimizer` set by a base class in another module of the project."""
        pending = [(importer, base) for base in bases]
        for _ in range(MAX_ALIAS_HOPS * 4):
            if not pending:
                break
            where, base = pending.pop(0)
            found = self.locate(where, base)
            facts = found[0].classes.get(found[1]) if found is not None else None
            if facts is None:
                continue
            if attribute in facts.attributes:
                return facts.attributes[attribute]
            pending += [(found[0].filename, b) for b in facts.bases]  # type: ignore[index]
        return ()


def row_of(filename: str, line: str) -> int:
    """The row where a summarised call starts (1 when the file changed since)."""
    try:
        text = Path(filename).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    offset = text.find(line)
    return text.count("\n", 0, offset) + 1 if offset >= 0 else 1


def _shared_folders(a: str, b: str) -> int:
    count = 0
    for x, y in zip(a.split("/")[:-1], b.split("/")[:-1]):
        if x != y:
            break
        count += 1
    return count
