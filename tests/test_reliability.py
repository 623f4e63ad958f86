"""Lint on hostile but valid input (issue 10): deep code, costly constants, odd files and encodings.

Each test reproduces one failure of the reliability audit (`shared/audits/reliability.md`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import lint, write

SF_HEADER = "import schedulefree\nimport torch\nmodel = torch.nn.Linear(2, 2)\n"
ZERO_LR = SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=0)\n"
CLEAN = SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"

pytestmark = pytest.mark.usefixtures("in_tmp_path")


def lint_process(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real CLI in a child process: a hang fails the test (TimeoutExpired) instead of blocking the suite."""
    command = [sys.executable, "-m", "sfdoctor", "lint", "--isolated", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sfdoctor: error:")]


# -- F2/F3: deep code is reported once as not analysed, the other files are linted ---------------

DEEP = {
    "sum_1000.py": SF_HEADER + "x = " + "+".join(["a"] * 1000) + "\n",
    "attributes_1000.py": SF_HEADER + "x = a" + ".b" * 1000 + "\n",
    "elif_500.py": CLEAN
    + "if x == 0:\n    opt.train()\n"
    + "".join(f"elif x == {i}:\n    opt.eval()\n" for i in range(1, 500))
    + "opt.step()\n",
    "calls_300.py": CLEAN + "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(300)) + "def f300():\n    opt.step()\nf0()\n",
}


@pytest.mark.parametrize("name", DEEP)
def test_deep_code_is_reported_once_as_not_analysed_and_other_files_are_linted(name: str) -> None:
    write(name, DEEP[name])
    write("zero.py", ZERO_LR)
    result = lint("--output-format", "json", name, "zero.py")
    assert result.exit_code == 2, result.output
    assert [f["filename"] for f in json.loads(result.stdout)] == ["zero.py"]
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"sfdoctor: error: {name}: not analysed"), result.stderr
    assert "nests too deeply" in errors[0] and "Traceback" not in result.output


def test_deep_code_does_not_say_all_checks_passed() -> None:
    write("sum.py", DEEP["sum_1000.py"])
    result = lint("sum.py")
    assert result.exit_code == 2
    assert "All checks passed" not in result.stdout
    assert "not everything could be checked (1 error below)" in result.stdout


def test_deep_code_in_the_parallel_path_keeps_the_other_files_findings() -> None:
    for i in range(16):
        write(f"zero{i:02}.py", ZERO_LR)
    write("sum.py", DEEP["sum_1000.py"])
    result = lint("--output-format", "sarif", "--jobs", "2", ".")
    assert result.exit_code == 2, result.output
    assert len(json.loads(result.stdout)["runs"][0]["results"]) == 16
    assert len(error_lines(result.stderr)) == 1


# -- F6: constant arithmetic is bounded; what is too large is unknown -----------------------------

TRAINER_ARGS = (
    "from transformers import TrainingArguments\nname = {}\n"
    "args = TrainingArguments('o', optim='schedule_free_adamw', lr_scheduler_type=name)\n"
)
COSTLY = {
    "lr=10 ** 10 ** 10": (SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=10 ** 10 ** 10)\n", []),
    "9 ** 9 ** 9 through a name": (
        SF_HEADER + "base = 9\nlr = base ** base ** base\nopt = schedulefree.AdamWScheduleFree(model.parameters(), lr=lr)\n",
        [],
    ),
    "a string repeated 10 ** 10 times": (
        TRAINER_ARGS.format("'constant' * 10 ** 10"),
        [],
    ),
    "%-formatting a gigabyte": (
        TRAINER_ARGS.format("'%0999999999d' % 1"),
        [],
    ),
    "a lambda raising the step to 10 ** 6": (
        SF_HEADER + "from torch.optim.lr_scheduler import LambdaLR\n"
        "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
        "sched = LambdaLR(opt, lambda s: 0 * s ** 10 ** 6)\n",
        ["SF102"],
    ),
    "small arithmetic is still evaluated": (
        SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=2 ** 100 - 2 ** 100 + 0 * 3)\n",
        ["SF110"],
    ),
}


@pytest.mark.parametrize("case", COSTLY)
def test_costly_constant_arithmetic_is_unknown_not_a_hang_or_memory_error(case: str) -> None:
    source, codes = COSTLY[case]
    write("train.py", source)
    result = lint_process("--output-format", "json", "train.py", timeout=30)
    assert result.returncode == (1 if codes else 0), result.stderr
    assert [f["code"] for f in json.loads(result.stdout)] == codes
    assert result.stderr == ""


# -- F8: the mode analysis is polynomial in the loop nesting ---------------------------------------


def test_nineteen_nested_loops_are_analysed_in_seconds_not_minutes() -> None:
    # before: the time doubled with each level (57 s for 19 levels); a hang fails with TimeoutExpired
    loops = "".join(f"{'    ' * depth}for i{depth} in y:\n" for depth in range(19))
    write("train.py", CLEAN + loops + "    " * 19 + "opt.step()\n")
    result = lint_process("--output-format", "concise", "train.py", timeout=30)
    assert result.returncode == 1
    assert result.stdout.startswith("train.py:24:77: SF201 ")
