"""The rule base class and the per-file context rules report into."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache, cached_property
from typing import ClassVar, TypeVar

import libcst as cst
from libcst.metadata import CodeRange

from ..findings import Finding, Fix, Location, Related, RuleInfo, Severity
from .analysis.index import ModuleIndex
from .analysis.positions import Positions
from .analysis.values import Evaluator, OptimizerSite
from .files.source import source_lines
from .project.view import ProjectView

T = TypeVar("T")


class ParsedFile:
    """A parsed module and what follows from its code alone: kept while the project analysis may lint
    the file again (summarised in a round, checked at the end), with another project view."""

    def __init__(self, module: cst.Module, source: bytes | None = None) -> None:
        self.module = module
        self.source = source  # the bytes `module` was parsed from, whose lines the positions count
        self.index = ModuleIndex(module)

    @cached_property
    def positions(self) -> Positions:
        # only files that report anything pay for positions
        return Positions(self.module, frozenset(map(id, self.index.block)), self.source)


class FileContext:
    """One parsed file: its index, an evaluator, and the findings reported so far."""

    def __init__(
        self,
        filename: str,
        module: cst.Module | ParsedFile,
        factories: frozenset[str],
        project: ProjectView | None = None,
    ) -> None:
        self.filename = filename
        self.parsed = module if isinstance(module, ParsedFile) else ParsedFile(module)
        self.module = self.parsed.module
        self.index = self.parsed.index
        self.evaluator = Evaluator(self.index, factories, project, filename)
        self.findings: list[Finding] = []
        self._analyses: dict[Callable, object] = {}

    @cached_property
    def lines(self) -> list[str]:
        """The source lines with their endings, for the indentation a fix repeats."""
        return source_lines(self.module.code)

    def analysis(self, build: Callable[[FileContext], T]) -> T:
        """A shared analysis (e.g. all schedulers of the file), computed once per file."""
        if build not in self._analyses:
            self._analyses[build] = build(self)
        return self._analyses[build]  # type: ignore[return-value]

    def position(self, node: cst.CSTNode) -> CodeRange:
        return self.parsed.positions[node]

    def location(self, node: cst.CSTNode) -> tuple[Location, Location]:
        code_range = self.position(node)
        return (
            Location(code_range.start.line, code_range.start.column + 1),
            Location(code_range.end.line, code_range.end.column + 1),
        )

    def related(self, message: str, node: cst.CSTNode) -> Related:
        return Related(message, self.filename, self.location(node)[0])

    def created(self, site: OptimizerSite) -> Related:
        """Where an optimizer is built: here, or in the module whose factory (or caller) builds it."""
        if site.built is not None and site.built.row:
            return Related("optimizer created here", site.built.filename, Location(site.built.row, 1))
        return self.related("optimizer created here", site.call)


class Rule:
    """A lint rule: subclasses set `info` and implement `check`, calling `report` for each finding."""

    info: ClassVar[RuleInfo]

    def __init__(self, context: FileContext) -> None:
        self.context = context

    def check(self) -> None:
        raise NotImplementedError

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        possible: bool = False,
        related: tuple[Related, ...] = (),
        fix: Fix | None = None,
        notes: tuple[str, ...] = (),
        severity: Severity | None = None,
    ) -> None:
        start, end = self.context.location(node)
        rule = self.info
        if severity is not None and severity != rule.severity:
            rule = RuleInfo(rule.code, rule.name, severity, rule.summary)
        self.context.findings.append(
            Finding(rule, message, self.context.filename, start, end, possible, related, fix, notes=notes)
        )


@cache
def discover_rules() -> tuple[type[Rule], ...]:
    """Every `Rule` subclass in the modules of `sfdoctor.lint.rules`, ordered by code."""
    from . import rules as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    found = [cls for cls in _subclasses(Rule) if "info" in cls.__dict__]
    return tuple(sorted(found, key=lambda cls: cls.info.code))


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]
