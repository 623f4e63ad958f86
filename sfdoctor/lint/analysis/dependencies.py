"""SF001/SF002: schedulefree pins, SF003: accelerate pins, in dependency files (not Python, so outside
the libcst engine)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ...findings import Finding, Location, RuleInfo
from ..project.configs import config_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SF001 = RuleInfo(
    "SF001",
    "unguarded-schedulefree-pin",
    "error",
    "A schedulefree pin or range that admits only releases without the zero-division guard.",
)
SF002 = RuleInfo(
    "SF002",
    "pre-train-mode-default-pin",
    "warning",
    "A schedulefree pin below 1.3 in a project that never calls optimizer.train(): upgrading breaks it.",
)
SF003 = RuleInfo(
    "SF003",
    "accelerate-deepspeed-eval-noop",
    "warning",
    "An accelerate pin before 1.15 in a project using DeepSpeed through accelerate with a ScheduleFree optimizer.",
)
DEPENDENCY_RULES = (SF001, SF002, SF003)

# Every schedulefree release on PyPI, oldest first.
KNOWN_RELEASES = tuple(
    Version(v)
    for v in (
        "1.0", "1.1", "1.2", "1.2.1", "1.2.2", "1.2.3", "1.2.4",
        "1.2.5", "1.2.6", "1.2.7", "1.3", "1.4", "1.4.1",
    )
)
# Releases whose `weight / weight_sum` has no ZeroDivisionError guard (1.2.3 re-ships the 1.2.1 code;
# 1.0 has the same division and does not even import as a package).
UNGUARDED_RELEASES = frozenset(Version(v) for v in ("1.0", "1.1", "1.2", "1.2.1", "1.2.3"))
# From this release on, optimizers start in eval mode and step() needs optimizer.train() first.
EVAL_MODE_DEFAULT_SINCE = Version("1.3")

# accelerate 1.15.0 forwards eval()/train() to the optimizer under DeepSpeed; 1.14.0 does not. A
# requirement that contains none of these admits only releases before the fix.
ACCELERATE_FIXED_PROBES = tuple(Version(v) for v in ("1.15.0", "1.15.1", "1.16.0", "1.20.0", "2.0.0", "3.0.0", "99.0"))
USES_ACCELERATE = re.compile(rb"\b(?:from|import)\s+accelerate\b")
# DeepSpeed chosen in the code: accelerate's plugin, or its distributed type
DEEPSPEED_THROUGH_ACCELERATE = re.compile(rb"DeepSpeedPlugin|deepspeed_plugin|DistributedType\.DEEPSPEED")
DEPENDENCY_FILE = re.compile(r"requirements.*\.txt|pyproject\.toml|setup\.cfg|environment\.ya?ml")
MENTIONS = re.compile(r"schedulefree|accelerate|deepspeed", re.IGNORECASE)
# SF002's whole-project check is text, not analysis: a receiver whose name contains "opt"
# (`optimizer`, `self.opt`, `optimizers[0]`, `self.optimizers()`) calling `.train()`.
OPTIMIZER_TRAIN_CALL = re.compile(rb"\w*opt\w*(?:\(\))?(?:\[[^\]\n]*\])?\s*\.\s*train\(\s*\)", re.IGNORECASE)
NAMES_SCHEDULEFREE = re.compile(rb"\bschedulefree\b")  # not `schedule_free_adamw`: HF Trainer calls train() itself

UPGRADE = (
    "require `schedulefree>=1.2.4` (1.3 or newer preferred: it starts in eval mode, "
    "so call optimizer.train() before training)"
)
ADD_TRAIN_CALL = (
    "call optimizer.train() before training and optimizer.eval() before evaluating or saving, "
    "then upgrade to `schedulefree>=1.3`"
)
# (text as written, PEP 508 requirement, row, column): conda specs are translated to PEP 508.
Candidate = tuple[str, str, int, int]


def is_unguarded(version: str) -> bool:
    """Whether an installed schedulefree version crashes with ZeroDivisionError at lr 0."""
    return Version(version) in UNGUARDED_RELEASES


def is_dependency_file(path: Path) -> bool:
    return DEPENDENCY_FILE.fullmatch(path.name) is not None


def never_calls_optimizer_train(python_files: Iterable[Path]) -> bool:
    """True when the project names ScheduleFree somewhere (a Python file, or a YAML/JSON/TOML config:
    Hydra's `_target_: schedulefree.AdamWScheduleFree`, `optim: schedule_free_adamw`) and no Python
    file calls `<optimizer>.train()`."""
    uses_schedulefree = False
    folders = set()
    for path in python_files:
        folders.add(path.parent)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if OPTIMIZER_TRAIN_CALL.search(data):
            return False
        uses_schedulefree = uses_schedulefree or NAMES_SCHEDULEFREE.search(data) is not None
    return uses_schedulefree or any(NAMES_SCHEDULEFREE.search(data) for _, data in config_files(folders))


def accelerate_deepspeed_evidence(python_files: Iterable[Path]) -> str | None:
    """How the project shows it runs a ScheduleFree optimizer under DeepSpeed through accelerate:
    "code" (accelerate's DeepSpeed plugin in the code), "accelerate" (schedulefree and accelerate
    are used; DeepSpeed would come from the launch configuration), or None."""
    found: set[str] = set()
    for path in python_files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found |= {name for name, pattern in (
            ("schedulefree", NAMES_SCHEDULEFREE), ("accelerate", USES_ACCELERATE),
            ("code", DEEPSPEED_THROUGH_ACCELERATE)) if pattern.search(data)}
    if not {"schedulefree", "accelerate"} <= found:
        return None
    return "code" if "code" in found else "accelerate"


def lint_dependency_file(
    display: str,
    text: str,
    never_calls_train: Callable[[], bool],
    deepspeed_evidence: Callable[[], str | None] = lambda: None,
) -> list[Finding]:
    """SF001/SF002/SF003 findings for one dependency file; the callables are asked only when needed."""
    if not MENTIONS.search(text):
        return []
    findings = []
    candidates = list(_requirements(Path(display).name, text))
    for spec_text, requirement, row, column in candidates:
        if _admits_only_before_fix(requirement):
            evidence = deepspeed_evidence()
            lists_deepspeed = any(_name(r) == "deepspeed" for _, r, _, _ in candidates)
            if evidence == "code" or (evidence == "accelerate" and lists_deepspeed):
                findings.append(
                    Finding(
                        SF003,
                        f"`{spec_text}` admits only accelerate releases before 1.15, whose prepared optimizer "
                        "does not pass eval()/train() on to a ScheduleFree optimizer under DeepSpeed: "
                        "evaluations and checkpoints silently use y, not the averaged weights x",
                        display,
                        Location(row, column),
                        Location(row, column + len(spec_text)),
                        possible=evidence != "code",
                        notes=("require `accelerate>=1.15`",),
                    )
                )
            continue
        admitted = _admitted_releases(requirement)
        if not admitted:
            continue
        location, end = Location(row, column), Location(row, column + len(spec_text))
        listed = ", ".join(str(v) for v in admitted)
        if all(v in UNGUARDED_RELEASES for v in admitted):
            findings.append(
                Finding(
                    SF001,
                    f"`{spec_text}` admits only schedulefree releases without the zero-division guard "
                    f"({listed}): an lr of 0 on any step raises ZeroDivisionError in step()",
                    display,
                    location,
                    end,
                    notes=(UPGRADE,),
                )
            )
        if all(v < EVAL_MODE_DEFAULT_SINCE for v in admitted) and never_calls_train():
            findings.append(
                Finding(
                    SF002,
                    f"`{spec_text}` admits only schedulefree releases before 1.3 ({listed}), which start in "
                    "train mode, and no Python file here calls optimizer.train(): from 1.3 on the first "
                    "step() raises 'Optimizer was not in train mode'",
                    display,
                    location,
                    end,
                    notes=(ADD_TRAIN_CALL,),
                )
            )
    return findings


def _name(text: str) -> str | None:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def _admits_only_before_fix(text: str) -> bool:
    """An accelerate requirement with a specifier that admits no release from 1.15 on."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return False
    if canonicalize_name(requirement.name) != "accelerate" or requirement.url or not requirement.specifier:
        return False
    return not any(requirement.specifier.contains(v, prereleases=True) for v in ACCELERATE_FIXED_PROBES)


def _admitted_releases(text: str) -> list[Version]:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return []
    if canonicalize_name(requirement.name) != "schedulefree" or requirement.url or not requirement.specifier:
        return []
    return [v for v in KNOWN_RELEASES if requirement.specifier.contains(v, prereleases=True)]


def _requirements(name: str, text: str) -> Iterator[Candidate]:
    """Every candidate requirement in a dependency file."""
    if name == "pyproject.toml":
        yield from _pyproject(text)
    elif name == "setup.cfg":
        yield from _setup_cfg(text)
    elif name.startswith("environment."):
        yield from _environment_yml(text)
    else:
        yield from _requirements_txt(text)


def _requirements_txt(text: str) -> Iterator[Candidate]:
    lines = text.splitlines()
    for row, line in enumerate(lines, 1):
        if row > 1 and lines[row - 2].endswith("\\"):
            continue  # continuation lines hold options such as --hash
        # pip: a comment starts at a '#' at the start or after whitespace; options start with '-'.
        requirement = re.split(r"(?:^|\s)#|\s-", line, maxsplit=1)[0].rstrip("\\").strip()
        if requirement and not requirement.startswith("-"):
            yield requirement, requirement, row, line.index(requirement) + 1


def _setup_cfg(text: str) -> Iterator[Candidate]:
    """`install_requires` in [options] and every key of [options.extras_require], one per line."""
    section, in_list = "", False
    for row, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            section, in_list = stripped.strip("[]").strip(), False
            continue
        value = stripped
        if line and not line[0].isspace():
            key, value = re.match(r"([^=:]*)[=:]?(.*)", line).groups()
            in_list = (
                section == "options" and key.strip() == "install_requires"
            ) or section == "options.extras_require"
        requirement = value.split("#", 1)[0].strip()
        if in_list and requirement:
            yield requirement, requirement, row, line.index(requirement) + 1


def _environment_yml(text: str) -> Iterator[Candidate]:
    """List items of conda (`name=1.2`, `name 1.2`, `channel::name>=1.2`) and pip (PEP 508) syntax."""
    for row, line in enumerate(text.splitlines(), 1):
        item = re.match(r"\s*-\s*([^#]+?)\s*(?:#.*)?$", line)
        if item is None:
            continue
        original = item.group(1)
        spec = original.strip("'\"").split("::")[-1]
        conda = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\s*=\s*|\s+)([0-9][^=\s]*)(?:=\S+)?", spec)
        requirement = spec
        if conda is not None:  # conda's `name=1.2` means any 1.2.x
            version = conda.group(2)
            requirement = f"{conda.group(1)}=={version}" + ("" if version.endswith("*") else ".*")
        yield original, requirement, row, line.index(original) + 1


def _pyproject(text: str) -> Iterator[Candidate]:
    """`[project]` dependencies and optional-dependencies, and `[dependency-groups]`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    project = data.get("project", {})
    lists = [project.get("dependencies", [])]
    lists += list(project.get("optional-dependencies", {}).values())
    lists += list(data.get("dependency-groups", {}).values())
    seen: dict[str, int] = {}
    for requirement in (
        r for values in lists if isinstance(values, list) for r in values if isinstance(r, str)
    ):
        if not MENTIONS.search(requirement):
            continue
        # tomllib keeps no positions: the n-th time a string is listed, it is its n-th quoted occurrence.
        occurrences = list(re.finditer(r"([\"'])" + re.escape(requirement) + r"\1", text))
        index = seen[requirement] = seen.get(requirement, -1) + 1
        offset = occurrences[index].start() + 1 if index < len(occurrences) else 0
        row = text.count("\n", 0, offset) + 1
        yield requirement, requirement, row, offset - (text.rfind("\n", 0, offset) + 1) + 1
