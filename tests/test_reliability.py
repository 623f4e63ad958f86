"""Lint on hostile but valid input (issue 10): deep code, costly constants, odd files and encodings.

Each test reproduces one failure of the reliability audit (`shared/audits/reliability.md`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_chain_of_300_functions_calling_each_other_is_analysed() -> None:
    chain = "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(300))
    write("calls.py", CLEAN + chain + "def f300():\n    opt.step()\nf0()\n")
    result = lint("--output-format", "concise", "calls.py")
    assert (result.exit_code, result.stderr) == (1, "")
    assert result.stdout.startswith("calls.py:606:5: SF201 [error] opt.step() while the optimizer is in eval mode")


def test_deep_code_does_not_say_all_checks_passed() -> None:
    write("sum.py", DEEP["sum_1000.py"])
    result = lint("sum.py")
    assert result.exit_code == 2
    assert "All checks passed" not in result.stdout
    assert "not everything could be checked (1 error below)" in result.stdout


def test_an_error_writing_fixes_does_not_say_that_files_went_unchecked() -> None:
    write("train.py", CLEAN + "closure = schedulefree.SGDScheduleFreeClosure(model.parameters())\nclosure.train()\n")
    Path("train.py").chmod(0o444)
    result = lint("--fix", "--output-format", "concise", "train.py")
    assert result.exit_code == 2 and "fixes not written: the file is read-only" in result.stderr
    assert result.stdout.splitlines()[-1] == "Found 1 finding (1 error) in 1 file checked."


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
    "args = TrainingArguments('o', optim='schedule_free_adamw', lr_scheduler_type=name, save_strategy='no')\n"
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


def test_a_recursive_function_with_many_recursive_calls_is_analysed_not_a_hang() -> None:
    # before: what a parameter holds was followed through its own call sites again at each level of the
    # depth limit (8 call sites, 12 levels: 8**12 paths); torch's default_collate hung the lint for minutes
    calls = "".join(f"    if kind == {n}:\n        return merge(batch[{n}], kind, handlers=handlers)\n" for n in range(8))
    source = (SF_HEADER + "\n\ndef merge(batch, kind, handlers):\n    if type(batch) in handlers:\n"
              "        return handlers[type(batch)](batch, handlers=handlers)\n" + calls + "    return batch\n")
    write("train.py", source + "opt = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\nopt.train()\n")
    result = lint_process("--output-format", "json", "train.py", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [] and result.stderr == ""


def test_a_recursive_factory_that_hands_on_its_lr_is_evaluated_not_a_hang() -> None:
    # the same through the values of a parameter: `lr=lr` in 8 recursive calls of the factory
    calls = "".join(f"    if depth == {n}:\n        return build(params, lr=lr, depth=depth - 1)\n" for n in range(8))
    source = (SF_HEADER + "\n\ndef build(params, lr, depth):\n" + calls +
              "    return schedulefree.AdamWScheduleFree(params, lr=lr)\n\n\n"
              "opt = build(model.parameters(), lr=0, depth=3)\n")
    write("train.py", source)
    result = lint_process("--output-format", "json", "train.py", timeout=60)
    assert [(f["code"], f["location"]["row"]) for f in json.loads(result.stdout)] == [("SF110", 23)], result.stderr


# -- F1: FIFOs, sockets and devices are never read -------------------------------------------------


def test_a_fifo_in_a_linted_folder_is_skipped_and_the_other_files_are_linted() -> None:
    write("project/zero.py", ZERO_LR)
    os.mkfifo("project/blocks.py")  # reading it would wait forever for a writer
    result = lint_process("--output-format", "concise", "project", timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("project/zero.py:4:") and "1 file checked" in result.stdout


def test_a_fifo_named_on_the_command_line_is_a_one_line_error() -> None:
    os.mkfifo("blocks.py")
    result = lint_process("blocks.py", timeout=30)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "sfdoctor: error: blocks.py: not a regular file or folder (a FIFO)\n"


def test_a_file_replaced_by_a_fifo_after_discovery_is_reported_not_read() -> None:
    os.mkfifo("blocks.py")
    script = (
        "from pathlib import Path\nfrom sfdoctor.lint.engine import Settings, lint_files\n"
        "print(lint_files([(Path('blocks.py'), 'blocks.py')], Settings()).errors)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == "['blocks.py: not analysed: not a regular file (a FIFO)']\n"


# -- F4: invalid glob ranges -----------------------------------------------------------------------


def test_a_gitignore_line_git_cannot_use_is_skipped_and_the_others_still_apply() -> None:
    write("project/.gitignore", "[z-a]\n!\nignored.py\n")
    write("project/ignored.py", ZERO_LR)
    write("project/zero.py", ZERO_LR)
    result = lint("--output-format", "concise", "project")
    assert result.exit_code == 1, result.output
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:-1]] == ["project/zero.py"]


@pytest.mark.parametrize(
    ("key", "table"),
    [("exclude", '["[z-a]"]'), ("extend-exclude", '["ok/", "[z-a]"]'), ("per-file-ignores", '{"[z-a]" = ["SF1"]}')],
)
def test_an_invalid_pattern_in_the_configuration_is_a_one_line_error_naming_file_and_key(key: str, table: str) -> None:
    write("pyproject.toml", f"[tool.sfdoctor]\n{key} = {table}\n")
    write("zero.py", ZERO_LR)
    result = lint("zero.py")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"sfdoctor: error: {os.getcwd()}/pyproject.toml: '{key}' has an invalid pattern '[z-a]': "
        "bad character range z-a\n"
    )


# -- F5: a size limit; larger files are reported, not parsed ---------------------------------------

BIG_STRING = 'padding = "' + "x" * 1_100_000 + '"\n'  # 1.1 MB on one line: cheap to parse when allowed


def test_a_file_over_the_size_limit_that_mentions_schedulefree_is_reported_as_not_analysed() -> None:
    write("big.py", ZERO_LR + BIG_STRING)
    write("zero.py", ZERO_LR)
    result = lint("--output-format", "json", "big.py", "zero.py")
    assert result.exit_code == 2
    assert [f["filename"] for f in json.loads(result.stdout)] == ["zero.py"]
    assert result.stderr == (
        "sfdoctor: error: big.py: not analysed: 1.1 MB is over the size limit of 1 MB "
        "(max-file-size in [tool.sfdoctor], or --max-file-size)\n"
    )


def test_a_file_over_the_size_limit_without_schedulefree_needs_no_analysis() -> None:
    write("big.py", "import torch\n" + BIG_STRING * 3)
    result = lint("big.py")
    assert (result.exit_code, result.stderr) == (0, "")
    assert "All checks passed! (1 file checked)" in result.stdout


def test_the_size_limit_is_set_by_the_command_line_or_the_configuration() -> None:
    write("big.py", ZERO_LR + BIG_STRING)
    assert [f["code"] for f in json.loads(lint("--output-format", "json", "--max-file-size", "2", "big.py").stdout)] == [
        "SF110"
    ]
    write("pyproject.toml", "[tool.sfdoctor]\nmax-file-size = 2\n")
    assert lint("big.py").exit_code == 1
    write("pyproject.toml", "[tool.sfdoctor]\nmax-file-size = 0\n")
    result = lint("big.py")
    assert result.exit_code == 2 and "'max-file-size' must be at least 1 (megabytes), got 0" in result.stderr


# -- F9: UTF-16/32 files are decoded by their BOM --------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_file_with_a_utf16_or_utf32_bom_is_analysed(encoding: str) -> None:
    write("zero.py", "\ufeff# café\n".encode(encoding) + ZERO_LR.encode(encoding))
    assert [(f["code"], f["location"]) for f in json.loads(lint("--output-format", "json", "zero.py").stdout)] == [
        ("SF110", {"row": 5, "column": 61})
    ]


def test_a_utf16_file_is_fixed_in_utf16_or_left_alone_when_its_bytes_would_change() -> None:
    script = SF_HEADER + "opt = schedulefree.AdamWScheduleFreeClosure(model.parameters())\nopt.train()\n"
    native = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"
    other = "utf-16-be" if native == "utf-16-le" else "utf-16-le"
    write("native.py", ("\ufeff" + script).encode(native))
    write("other.py", ("\ufeff" + script).encode(other))
    result = lint("--fix", "native.py", "other.py")
    assert result.exit_code == 2
    fixed = script.replace("opt.train()\n", "")
    assert Path("native.py").read_bytes() == ("\ufeff" + fixed).encode(native)
    assert Path("other.py").read_bytes() == ("\ufeff" + script).encode(other)
    assert result.stderr == "sfdoctor: error: other.py: cannot fix: it would not be written back as the same utf-16 bytes\n"
    assert "other.py:5:1: SF205" in result.stdout


# -- F12: a keyword is added after a parenthesised last argument, not inside it -------------------

WARMUP_SCHEDULER = (
    SF_HEADER + "from torch.optim.lr_scheduler import LambdaLR, OneCycleLR\n"
    "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3, betas=(0.9, 0.999))\n"
    "scheduler = LambdaLR(optimizer, lambda s: min(1.0, s / 100))\n"
    "optimizer.train()\nfor x in range(3):\n    optimizer.step()\n    scheduler.step()\n"
)


ONE_CYCLE = (
    SF_HEADER + "from torch.optim.lr_scheduler import OneCycleLR\n"
    "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
    "scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=100, div_factor=(25.0))\n"
)


@pytest.mark.parametrize(
    ("source", "last_argument", "added"),
    [
        (WARMUP_SCHEDULER, "betas=(0.9, 0.999))", ", warmup_steps=100"),
        (WARMUP_SCHEDULER.replace("betas=(0.9, 0.999)", "weight_decay=(0.0)"), "weight_decay=(0.0))", ", warmup_steps=100"),
        (ONE_CYCLE, "div_factor=(25.0))", ", cycle_momentum=False"),
    ],
    ids=["SF102 betas", "SF102 weight_decay", "SF103 div_factor"],
)
def test_a_keyword_fix_goes_after_a_parenthesised_last_argument(source: str, last_argument: str, added: str) -> None:
    write("train.py", source)
    result = lint("--fix", "--unsafe-fixes", "--select", "SF102,SF103", "train.py")
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert f"{last_argument[:-1]}{added})\n" in Path("train.py").read_text()  # before the call's `)`


# -- F13: SF201's fix for an optimizer built inside the loop (a fix that does not settle: test_fix.py)


def test_train_is_inserted_after_an_optimizer_built_inside_the_loop() -> None:
    body = "for epoch in range(10):\n    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
    write("train.py", SF_HEADER + body + "    optimizer.step()\n")
    result = lint("--fix", "--unsafe-fixes", "train.py")
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert Path("train.py").read_text() == SF_HEADER + body + "    optimizer.train()\n    optimizer.step()\n"


# -- F14: model.eval() while training is not an evaluation ----------------------------------------

FROZEN_BATCHNORM = SF_HEADER + (
    "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
    "for epoch in range(10):\n"
    "    model.train()\n"
    "    optimizer.train()\n"
    "    model.eval()  # BatchNorm statistics frozen while fine-tuning\n"
    "    for x, y in data:\n"
    "        optimizer.zero_grad()\n"
    "        loss_fn(model(x), y).backward()\n"
    "        optimizer.step()\n"
    "    optimizer.eval()\n"
)


def test_training_with_the_model_in_eval_mode_is_not_an_evaluation() -> None:
    write("train.py", FROZEN_BATCHNORM)
    result = lint("--diff", "--unsafe-fixes", "train.py")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "Would fix 0 findings in 0 files.\n")


@pytest.mark.parametrize(
    "evaluation",
    [
        "    model.eval()\n    for x, y in valid:\n        total += loss_fn(model(x), y).item()\n",
        "    with torch.no_grad():\n        for x, y in valid:\n            total += loss_fn(model(x), y).item()\n",
    ],
    ids=["model.eval() without no_grad", "no_grad"],
)
def test_an_evaluation_in_train_mode_is_still_reported(evaluation: str) -> None:
    script = FROZEN_BATCHNORM.replace("    optimizer.eval()\n", evaluation)
    write("train.py", script)
    assert [f["code"] for f in json.loads(lint("--output-format", "json", "train.py").stdout)] == ["SF202"]


# -- F7: the warm-up length is computed, not searched step by step --------------------------------


@pytest.mark.parametrize(
    ("schedule", "warmup"),
    [
        ("lambda step: min(1.0, step / total_steps)", "total_steps"),  # 1,000,000: past the old search
        ("lambda step: min(1.0, 2 * step / 3_000_000)", "1500000"),
        ("lambda step: min(1.0, (step / 2_000_000) ** 2)", "2000000"),  # not linear: bisection
        ("lambda step: step / 500 if step < 500 else 0.999 ** (step - 500)", "500"),  # warm-up, then decay
    ],
)
def test_the_warmup_length_of_a_long_or_curved_warmup_is_found(schedule: str, warmup: str) -> None:
    write(
        "train.py",
        SF_HEADER + "from torch.optim.lr_scheduler import LambdaLR\ntotal_steps = 1_000_000\n"
        "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
        f"scheduler = LambdaLR(optimizer, {schedule})\n",
    )
    result = lint("--diff", "--unsafe-fixes", "train.py")
    assert f"+optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3, warmup_steps={warmup})\n" in (
        result.stdout
    ), result.output


def test_a_warmup_that_never_reaches_one_gets_no_fix() -> None:
    write(
        "train.py",
        SF_HEADER + "from torch.optim.lr_scheduler import LambdaLR\n"
        "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
        "scheduler = LambdaLR(optimizer, lambda step: min(0.5, step / 1e308))\n",
    )
    result = lint("--output-format", "json", "train.py")
    assert [(f["code"], f["fix"]) for f in json.loads(result.stdout)] == [("SF102", None)]


# -- F10: a notebook named on the command line -----------------------------------------------------


def test_a_notebook_is_linted_as_its_code_cells_not_as_a_python_dict() -> None:
    cell = {"cell_type": "code", "source": ["opt = schedulefree.AdamWScheduleFree(m.parameters(), lr=0)"]}
    write("train.ipynb", json.dumps({"cells": [cell], "nbformat": 4, "nbformat_minor": 5}))
    write("zero.py", ZERO_LR)
    result = lint("--output-format", "concise", "train.ipynb", "zero.py")
    assert result.exit_code == 1
    assert [line.split(" [")[0] for line in result.stdout.splitlines()[:2]] == [
        "train.ipynb:cell 1:1:57: SF110",
        "zero.py:4:61: SF110",
    ]
    assert result.stderr == ""


# -- F11: what Python parses is never a syntax error -----------------------------------------------


def test_valid_python_that_libcst_cannot_parse_is_not_analysed_rather_than_a_syntax_error() -> None:
    write("joined.py", ZERO_LR + "x = " + " ".join(['"a"'] * 5000) + "\n")
    result = lint("--output-format", "json", "joined.py")
    assert (result.exit_code, json.loads(result.stdout)) == (2, [])
    assert result.stderr == (
        "sfdoctor: error: joined.py: not analysed: Python parses it but libcst, the parser sfdoctor uses, "
        "does not (one of its limits)\n"
    )


def test_a_real_syntax_error_is_still_sf000() -> None:
    write("broken.py", ZERO_LR + "x = (\n")
    assert [f["code"] for f in json.loads(lint("--output-format", "json", "broken.py").stdout)] == ["SF000"]


# -- mode fixes that did not settle on generated programs (the fuzz test below) --------------------


def test_train_is_inserted_after_an_optimizer_built_in_the_function_that_steps() -> None:
    body = "def fit():\n    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
    write("train.py", SF_HEADER + body + "    optimizer.step()\n")
    assert lint("--fix", "--unsafe-fixes", "train.py").exit_code == 0
    assert Path("train.py").read_text() == SF_HEADER + body + "    optimizer.train()\n    optimizer.step()\n"


@pytest.mark.parametrize(
    "script",
    [
        # eval() earlier in the same iteration: a train() above the loop or at its top cannot help
        CLEAN + "opt.train()\nfor x in data:\n    opt.eval()\n    opt.step()\n",
        # the model the first optimizer trains is saved after `optimizer` was rebound to another one
        CLEAN.replace("opt =", "optimizer =")
        + "optimizer.train()\nfor x in range(3):\n    model(x).sum().backward()\n    optimizer.step()\n"
        "optimizer = schedulefree.AdamWScheduleFree(torch.nn.Linear(2, 2).parameters(), lr=1e-3)\n"
        "optimizer.eval()\ntorch.save(model.state_dict(), 'model.pt')\n",
    ],
    ids=["SF201 eval() before the step", "SF203 rebound name"],
)
def test_no_mode_fix_is_offered_where_it_could_not_settle(script: str) -> None:
    write("train.py", script)
    findings = json.loads(lint("--output-format", "json", "train.py").stdout)
    assert [(f["code"], f["fix"]) for f in findings] in ([("SF201", None)], [("SF203", None)])


# -- a worker process that dies mid-run (killed, out of memory) costs time, not findings ------------


def test_files_of_a_worker_that_died_between_rounds_are_linted_in_the_main_process() -> None:
    from sfdoctor.lint.engine import Settings, Workers
    from sfdoctor.lint.project.link import Job
    from sfdoctor.lint.project.view import ProjectView

    names = [f"train_{i}.py" for i in range(20)]
    for name in names:
        write(name, ZERO_LR)
    settings = Settings(project=ProjectView({name: name[:-3] for name in names}))
    jobs = [Job(Path(name), name) for name in names]
    workers = Workers(2)
    try:
        first = workers.run(jobs, settings)
        workers._processes[0].kill()
        workers._processes[0].join()
        second = workers.run(jobs, settings)
    finally:
        workers.close()
    assert [[f.code for f in r.findings] for r in first] == [["SF110"]] * 20
    assert [[f.code for f in r.findings] for r in second] == [["SF110"]] * 20
