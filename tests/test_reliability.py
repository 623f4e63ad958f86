"""Lint on hostile but valid input (issue 10): deep code, costly constants, odd files and encodings.

Each test reproduces one failure of the reliability audit (`shared/audits/reliability.md`)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import lint, write

SF_HEADER = "import schedulefree\nimport torch\nmodel = torch.nn.Linear(2, 2)\n"
ZERO_LR = SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=0)\n"
CLEAN = SF_HEADER + "opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"

pytestmark = pytest.mark.usefixtures("in_tmp_path")


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
