"""Generated training scripts for fuzzing lint: seeded mutations of the real shapes in `fixtures/`.

Program `i` of seed `s` comes from `random.Random(f"{s}-{i}")` alone, so any one program can be
regenerated. A mutation works on lines: it changes numbers, deletes, duplicates, swaps or wraps
statements, and inserts snippets of ScheduleFree code (constructions, schedulers, mode calls,
steps, evaluations, saves) at a statement's indentation. Most results are valid Python; some are
not, and those must give SF000, not a crash.
"""

from __future__ import annotations

import ast
import itertools
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sfdoctor.findings import Finding
from sfdoctor.lint.checker import lint_source
from sfdoctor.lint.engine import Settings
from sfdoctor.lint.fixes.fix import fixed_text

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")
NUMBERS = ("0", "0.0", "1", "-1", "1e-3", "0.5", "100", "10 ** 6", "2 ** 100", "1e308", "(0.9, 0.999)")
SNIPPETS = (
    "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr={number})",
    "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr={number}, warmup_steps={number})",
    "optimizer = schedulefree.RAdamScheduleFree(model.parameters(), lr=1e-3, betas=({number}, 0.999))",
    "optimizer = schedulefree.AdamWScheduleFreeClosure(model.parameters(), lr={number})",
    "optimizer = schedulefree.ScheduleFreeWrapper(torch.optim.Adam(model.parameters()), momentum={number})",
    "scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / {number}))",
    "scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps={number})",
    "scheduler = transformers.get_linear_schedule_with_warmup(optimizer, {number}, 1000)",
    "scheduler.step()",
    "optimizer.train()",
    "optimizer.eval()",
    "optimizer.step()",
    "optimizer.zero_grad()",
    "model.train()",
    "model.eval()",
    "loss = model(x).sum()\nloss.backward()",
    "with torch.no_grad():\n    accuracy = model(x).argmax(-1)",
    "evaluate(model)",
    "torch.save(model.state_dict(), 'model.pt')",
    "optimizer.load_state_dict(torch.load('optimizer.pt'))",
    "optimizer.param_groups[0]['lr'] = {number}",
    "for group in optimizer.param_groups:\n    group['betas'] = ({number}, 0.999)",
    "for p in model.parameters():\n    p.grad.zero_()",
    "with torch.autocast('cuda'):\n    loss = model(x).sum()\n    optimizer.eval()",
    "args = TrainingArguments('out', optim='schedule_free_adamw', lr_scheduler_type='cosine')",
    "lr = {number}",
    "for step in range({number}):\n    optimizer.step()",
    "import schedulefree",
)
WRAPPERS = ("for _ in range(2):", "if flag:", "with torch.no_grad():", "while True:", "try:")


def sources() -> list[tuple[str, str]]:
    """(name, text) of every Python fixture: the shapes mutations start from."""
    found = [(str(path.relative_to(FIXTURES)), path.read_text(encoding="utf-8")) for path in sorted(FIXTURES.rglob("*.py"))]
    return [(name, text) for name, text in found if text.strip()]  # an empty __init__.py has nothing to mutate


def programs(seed: int, count: int, shapes: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, str]]:
    """`count` (name, source) pairs; the name says the seed, the index and the shape."""
    shapes = shapes or sources()
    for index in range(count):
        rng = random.Random(f"{seed}-{index}")
        shape_name, text = rng.choice(shapes)
        lines = text.splitlines()
        for _ in range(rng.randint(1, 6)):
            lines = rng.choice(MUTATIONS)(rng, lines)
        yield f"s{seed}_{index:05}_{Path(shape_name).stem}.py", "\n".join(lines) + "\n"


def _statements(lines: list[str], single_line: bool = False) -> list[int]:
    """Indexes of the lines where a statement starts (with its decorators); [] when they do not parse."""
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return []
    starts = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or (single_line and node.lineno != node.end_lineno):
            continue
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno] + [d.lineno for d in decorators]) - 1
        if not lines[first].lstrip().startswith("elif"):  # an `elif` is an If node of its own
            starts.add(first)
    return sorted(starts)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _numbers(rng: random.Random, lines: list[str]) -> list[str]:
    if not lines:
        return lines  # an earlier mutation deleted everything
    picked = rng.randrange(len(lines))
    lines = list(lines)
    lines[picked] = NUMBER.sub(lambda m: rng.choice(NUMBERS) if rng.random() < 0.5 else m.group(), lines[picked])
    return lines


def _insert(rng: random.Random, lines: list[str]) -> list[str]:
    at = rng.choice(_statements(lines) or [len(lines)])
    indent = _indent(lines[at]) if at < len(lines) else ""
    snippet = rng.choice(SNIPPETS).replace("{number}", rng.choice(NUMBERS[:8]))
    return lines[:at] + [indent + part for part in snippet.split("\n")] + lines[at:]


def _delete(rng: random.Random, lines: list[str]) -> list[str]:
    statements = _statements(lines, single_line=True)
    if not statements:
        return lines
    at = rng.choice(statements)
    return lines[:at] + lines[at + 1 :]


def _duplicate(rng: random.Random, lines: list[str]) -> list[str]:
    statements = _statements(lines, single_line=True)
    if not statements:
        return lines
    at = rng.choice(statements)
    return lines[: at + 1] + [lines[at]] + lines[at + 1 :]


def _swap(rng: random.Random, lines: list[str]) -> list[str]:
    statements = _statements(lines, single_line=True)
    pairs = [(a, b) for a, b in itertools.pairwise(statements) if b == a + 1 and _indent(lines[a]) == _indent(lines[b])]
    if not pairs:
        return lines
    a, b = rng.choice(pairs)
    lines = list(lines)
    lines[a], lines[b] = lines[b], lines[a]
    return lines


def _wrap(rng: random.Random, lines: list[str]) -> list[str]:
    statements = _statements(lines, single_line=True)
    if not statements:
        return lines
    at = rng.choice(statements)
    indent = _indent(lines[at])
    header = rng.choice(WRAPPERS)
    wrapped = [indent + header, "    " + lines[at]]
    if header == "try:":
        wrapped += [indent + "except Exception:", indent + "    pass"]
    return lines[:at] + wrapped + lines[at + 1 :]


MUTATIONS: tuple[Callable[[random.Random, list[str]], list[str]], ...] = (
    _numbers,
    _numbers,
    _insert,
    _insert,
    _insert,
    _delete,
    _duplicate,
    _swap,
    _wrap,
)


@dataclass
class Checked:
    """What linting and fixing one program did."""

    codes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # internal errors, files not analysed
    problems: list[str] = field(default_factory=list)  # broken promises: a fuzz failure each
    fixes: int = 0
    dropped: list[str] = field(default_factory=list)  # fixes that did not settle, dropped alone
    seconds: float = 0.0


def _every_fix(finding: Finding) -> bool:
    return True


def check(name: str, source: str) -> Checked:
    """Lint a program, then fix it with every fix, and check what lint promises: SF000 exactly when
    Python cannot parse it, no internal error, fixes that settle, parse, and change nothing when run
    again. Exceptions propagate: a traceback is a failure too."""
    start = time.perf_counter()
    settings = Settings()
    result = lint_source(name, source.encode(), settings)
    checked = Checked([f.code for f in result.findings], list(result.errors))
    checked.problems += [error for error in result.errors if "internal error" in error]
    try:
        ast.parse(source)
        python_parses = True
    except SyntaxError:
        python_parses = False
    if result.analysed and python_parses == ("SF000" in checked.codes):
        checked.problems.append(f"{name}: SF000 {'reported' if python_parses else 'missing'}")
    if any(finding.fix is not None for finding in result.findings):
        fixed, applied, _, errors = fixed_text(name, source, "utf-8", settings, _every_fix)
        checked.fixes = len(applied)
        checked.dropped = [error for error in errors if error.endswith("fix dropped: it did not settle")]
        checked.problems += [error for error in errors if error not in checked.dropped]
        if fixed != source and fixed_text(name, fixed, "utf-8", settings, _every_fix)[:2] != (fixed, []):
            checked.problems.append(f"{name}: a second fix run changed the fixed text")
    checked.seconds = time.perf_counter() - start
    return checked
