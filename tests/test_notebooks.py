"""Jupyter notebooks and IPython syntax, through the real `sfdoctor lint` CLI on real files.

Notebooks are linted as their code cells put together; findings name the cell and the line in it;
`--fix` rewrites the cells and nothing else of the JSON. IPython lines (`!pip install`, `%%time`,
`model?`) read as blank lines, in notebooks and in `.py` exports, and no fix touches them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import libcst as cst
import pytest
from cli_helpers import lint, write

from sfdoctor.findings import Edit, Fix, RuleInfo
from sfdoctor.lint.files.magics import magic_rows
from sfdoctor.lint.rule import Rule, discover_rules

REPO = Path(__file__).resolve().parent.parent
BAD = REPO / "fixtures" / "lint" / "bad_notebook_warmup_scheduler.ipynb"
FIX_CASE = REPO / "fixtures" / "fixes" / "sf102_notebook_lambda_warmup.ipynb"
FIX_EXPECTED = REPO / "fixtures" / "fixes" / "expected" / "sf102_notebook_lambda_warmup.ipynb"
HEADER = "import schedulefree\nimport torch\nmodel = torch.nn.Linear(2, 2)\n"
ZERO_LR = "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)"

pytestmark = pytest.mark.usefixtures("in_tmp_path")


def notebook(*cells: str | tuple[str, str], indent: int = 1) -> str:
    """A notebook as Jupyter writes it: a string is a code cell, ("markdown", text) another kind."""
    built = []
    for number, cell in enumerate(cells, 1):
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        built.append({"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)})
        if kind == "code":
            built[-1].update(execution_count=number, outputs=[])
    document = {"cells": built, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(document, indent=indent, sort_keys=True) + "\n"


def json_findings(*args: str | Path) -> list[dict]:
    result = lint("--isolated", "--output-format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


# -- reporting ----------------------------------------------------------------------------------


def test_findings_name_the_cell_and_the_line_in_it() -> None:
    shutil.copyfile(BAD, "train.ipynb")
    result = lint("--isolated", "--output-format", "concise", "train.ipynb")
    assert result.exit_code == 1
    assert [line.split(" [")[0] for line in result.stdout.splitlines()[:2]] == [
        "train.ipynb:cell 3:10:13: SF102",
        "train.ipynb:cell 5:7:9: SF201",
    ]


def test_json_gives_the_cell_and_positions_in_the_cell_for_findings_related_locations_and_edits() -> None:
    shutil.copyfile(BAD, "train.ipynb")
    sf102, sf201 = json_findings("train.ipynb")
    assert (sf102["code"], sf102["cell"], sf102["location"], sf102["end_location"]) == (
        "SF102",
        3,
        {"row": 10, "column": 13, "cell": 3},
        {"row": 10, "column": 67, "cell": 3},
    )
    assert sf102["related"][0]["location"] == {"row": 9, "column": 13, "cell": 3}  # the constructor call
    # the fix removes the scheduler (cell 3) and its step() call (cell 5)
    assert {edit["location"]["cell"] for edit in sf102["fix"]["edits"]} == {3, 5}
    assert (sf201["cell"], sf201["location"]["row"]) == (5, 7)


def test_the_code_frame_shows_the_cells_lines_not_the_json() -> None:
    shutil.copyfile(BAD, "train.ipynb")
    result = lint("--isolated", "train.ipynb")
    assert "❱ 10 scheduler = LambdaLR(optimizer, lambda step: min(1.0, step / 100))" in result.stdout
    assert "❱ 7         optimizer.step()" in result.stdout
    assert "note: optimizer created here at train.ipynb:cell 3:9: optimizer = schedulefree" in result.stdout
    assert '"source"' not in result.stdout


def test_github_annotations_and_sarif_name_the_file_and_put_the_cell_in_the_message() -> None:
    write("train.ipynb", notebook(("markdown", "# Train"), HEADER + ZERO_LR))
    github = lint("--isolated", "--output-format", "github", "train.ipynb")
    assert github.stdout.startswith("::error file=train.ipynb,title=sfdoctor (SF110)::cell 2:4:67: AdamWScheduleFree gets lr 0.0")
    log = json.loads(lint("--isolated", "--output-format", "sarif", "train.ipynb").stdout)
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.validate(log, schema)
    [result] = log["runs"][0]["results"]
    assert result["locations"][0] == {
        "physicalLocation": {"artifactLocation": {"uri": "train.ipynb", "uriBaseId": "%SRCROOT%"}},
        "properties": {"cell": 2, "line": 4},
    }
    assert result["message"]["text"].startswith("cell 2:4:67: AdamWScheduleFree gets lr 0.0")


def test_noqa_works_in_a_cell() -> None:
    write("train.ipynb", notebook(HEADER + ZERO_LR + "  # noqa: SF110", ZERO_LR))
    assert [(f["code"], f["cell"], f["location"]["row"]) for f in json_findings("train.ipynb")] == [("SF110", 2, 1)]


def test_markdown_raw_and_foreign_cell_magic_cells_are_left_out() -> None:
    text = notebook(
        ("markdown", "lr=0.0 in prose\n"),
        HEADER,
        ("raw", ZERO_LR),
        "%%bash\necho 'lr=0.0' > notes.txt\n",  # not Python: left out, not a syntax error
        "%%writefile other.py\n" + ZERO_LR,  # another program's code
        "%%time\n" + ZERO_LR,  # the notebook's own code, timed
    )
    write("train.ipynb", text)
    assert [(f["code"], f["cell"], f["location"]["row"]) for f in json_findings("train.ipynb")] == [("SF110", 6, 2)]


def test_a_notebook_of_another_language_and_an_empty_notebook_pass() -> None:
    r_notebook = json.loads(notebook(HEADER + ZERO_LR))
    r_notebook["metadata"]["language_info"]["name"] = "R"
    write("analysis.ipynb", json.dumps(r_notebook))
    write("empty.ipynb", json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    result = lint("--isolated", "analysis.ipynb", "empty.ipynb")
    assert (result.exit_code, result.stdout.strip()) == (0, "All checks passed! (2 files checked)")


def test_a_notebook_uses_the_projects_modules_as_a_script_does() -> None:
    write("optim_factory.py", "import schedulefree\n\n\ndef build(model):\n    return schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)\n")
    write("explore.ipynb", notebook("!pip install schedulefree", "import torch\nfrom optim_factory import build\noptimizer = build(torch.nn.Linear(2, 2))\noptimizer.step()"))
    found = json_findings(".")
    assert [(f["filename"], f["code"], f.get("cell"), f["location"]["row"]) for f in found] == [
        ("explore.ipynb", "SF201", 2, 4),  # the optimizer comes from the factory in optim_factory.py
        ("optim_factory.py", "SF110", None, 5),
    ]


# -- discovery ----------------------------------------------------------------------------------


def test_folder_walks_take_notebooks_and_respect_excludes_and_gitignore() -> None:
    for name in ("nb/train.ipynb", "nb/scratch/old.ipynb", "nb/outputs/run.ipynb", "nb/keep.ipynb"):
        write(name, notebook(HEADER + ZERO_LR))
    write("nb/.gitignore", "scratch/\n")
    write("pyproject.toml", '[tool.sfdoctor]\nextend-exclude = ["outputs/"]\n')
    found = json.loads(lint("--output-format", "json", "nb").stdout)  # with the pyproject.toml
    assert sorted(f["filename"] for f in found) == ["nb/keep.ipynb", "nb/train.ipynb"]


# -- IPython lines --------------------------------------------------------------------------------


def test_ipython_lines_in_a_py_export_read_as_blank_lines_and_keep_positions() -> None:
    write(
        "export.py",
        "!pip install schedulefree\n%matplotlib inline\nfiles = !ls\ntorch.optim?\n??schedulefree\n"
        + HEADER
        + "%time x = 1\n"
        + ZERO_LR
        + "\n",
    )
    assert [(f["code"], f["location"]["row"], f["location"]["column"]) for f in json_findings("export.py")] == [
        ("SF110", 10, 67)
    ]


def test_only_lines_that_start_a_logical_line_are_ipython_lines() -> None:
    text = (
        "!pip install x \\\n"  # 1, and its continuation 2
        "    schedulefree\n"
        "value = (a\n"  # 3: Python, and `% b` below continues it
        "% b)\n"
        'doc = """\n'
        "!not a command\n"  # 6: inside a string
        '"""\n'
        "ratio = 'it''s' \\\n"
        "% 2\n"  # 9: after a backslash
        "model.train?\n"  # 10
        "x = y  # %comment\n"
        "%%time\n"  # 12
    )
    assert magic_rows(text) == {1, 2, 10, 12}


def test_a_file_that_is_python_apart_from_them_is_not_a_syntax_error() -> None:
    write("export.py", HEADER + "!nvidia-smi\nfor step in range(3)\n")
    [finding] = json_findings("export.py")
    assert (finding["code"], finding["location"]["row"]) == ("SF000", 5)  # the real syntax error


# -- malformed notebooks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"cells": [', "invalid JSON: Expecting value: line 1 column 12 (char 11)"),
        ('{"metadata": {}, "nbformat": 4}', 'no "cells" list (nbformat 4)'),
        ('{"cells": [{"cell_type": "code", "source": 42}]}', "the source of cell 1 is not a string or a list of strings"),
        ('{"cells": ["print(1)"]}', "cell 1 is not an object"),
    ],
)
def test_a_malformed_notebook_is_one_error_line_and_the_other_files_are_linted(content: str, reason: str) -> None:
    write("broken.ipynb", content)
    write("zero.py", HEADER + ZERO_LR + "\n")
    result = lint("--isolated", "--output-format", "concise", "broken.ipynb", "zero.py")
    assert result.exit_code == 2
    assert result.stdout.startswith("zero.py:4:67: SF110")
    assert result.stderr == f"sfdoctor: error: broken.ipynb: not analysed: not a valid Jupyter notebook: {reason}\n"


def test_the_size_limit_applies_to_the_code_cells() -> None:
    big_output = {"output_type": "stream", "name": "stdout", "text": ["x" * 3_000_000]}
    document = json.loads(notebook(HEADER + ZERO_LR))
    document["cells"][0]["outputs"] = [big_output]
    write("plots.ipynb", json.dumps(document))  # 3 MB of output, a few lines of code
    assert [f["code"] for f in json_findings("plots.ipynb")] == ["SF110"]
    write("generated.ipynb", notebook(HEADER + "x = 1\n" * 200_000 + ZERO_LR))
    result = lint("--isolated", "generated.ipynb")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "sfdoctor: error: generated.ipynb: not analysed: its code cells: 1.2 MB is over the size limit of 1 MB"
    )


# -- fixes ----------------------------------------------------------------------------------------


def test_fix_rewrites_the_cells_and_keeps_the_rest_of_the_json() -> None:
    shutil.copyfile(FIX_CASE, "head.ipynb")
    result = lint("--isolated", "--fix", "--unsafe-fixes", "head.ipynb")
    assert (result.exit_code, result.stderr) == (0, "")
    fixed = Path("head.ipynb").read_text(encoding="utf-8")
    assert fixed == FIX_EXPECTED.read_text(encoding="utf-8")
    before, after = json.loads(FIX_CASE.read_text(encoding="utf-8")), json.loads(fixed)
    for cell in (*before["cells"], *after["cells"]):
        source = cell.pop("source")
        assert not source or not source[-1].endswith("\n")  # each cell's last line as Jupyter keeps it
    assert after == before  # outputs, execution counts, metadata, the raw and markdown cells
    code = ["".join(cell["source"]) for cell in json.loads(fixed)["cells"] if cell["cell_type"] == "code"]
    assert code[0].startswith("!pip install -q schedulefree\n") and code[1].startswith("%%time\n")
    written = os.stat("head.ipynb").st_mtime_ns
    again = lint("--isolated", "--fix", "--unsafe-fixes", "head.ipynb")
    assert (again.exit_code, again.stdout) == (0, "All checks passed! (1 file checked)\n")
    assert os.stat("head.ipynb").st_mtime_ns == written


def test_diff_shows_each_changed_cell() -> None:
    shutil.copyfile(FIX_CASE, "head.ipynb")
    result = lint("--isolated", "--diff", "--unsafe-fixes", "head.ipynb")
    assert result.exit_code == 1
    headers = [line for line in result.stdout.splitlines() if line.startswith(("---", "+++"))]
    assert headers == ["--- a/head.ipynb:cell 2", "+++ b/head.ipynb:cell 2", "--- a/head.ipynb:cell 4", "+++ b/head.ipynb:cell 4"]
    assert "-    scheduler.step()\n" in result.stdout
    assert Path("head.ipynb").read_bytes() == FIX_CASE.read_bytes()


def test_a_fix_that_would_leave_a_cell_that_does_not_parse_on_its_own_is_not_written() -> None:
    # Jupyter runs cells one at a time: the loop's body in the next cell only parses together
    text = notebook(
        HEADER
        + "from torch.optim.lr_scheduler import LambdaLR\n"
        + "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)\n"
        + "scheduler = LambdaLR(optimizer, lambda step: min(1.0, step / 10))\n"
        + "for step in range(3):",
        "    optimizer.train()\n    optimizer.step()\n    scheduler.step()",
        indent=2,
    )
    write("split.ipynb", text)
    result = lint("--isolated", "--fix", "--unsafe-fixes", "--output-format", "concise", "split.ipynb")
    assert result.exit_code == 2
    assert result.stderr == "sfdoctor: error: split.ipynb: fixes not written: cell 1 would not parse on its own\n"
    assert result.stdout.startswith("split.ipynb:cell 1:6:13: SF102")
    assert Path("split.ipynb").read_text(encoding="utf-8") == text


class LoopRemovingFix(Rule):
    """Replaces each top-level `for` loop by `pass`: an edit over every line of the loop."""

    def check(self) -> None:
        for statement in self.context.module.body:
            if isinstance(statement, cst.For):
                start, end = self.context.location(statement)
                self.report(statement, "a loop", fix=Fix("drop the loop", "safe", (Edit("pass", start, end),)))


@pytest.fixture
def loop_rule():
    LoopRemovingFix.info = RuleInfo("SF996", "test-loop-removing-fix", "warning", "A fix over a block.")
    discover_rules.cache_clear()
    yield
    del LoopRemovingFix.info
    discover_rules.cache_clear()


@pytest.mark.usefixtures("loop_rule")
@pytest.mark.parametrize("name", ["export.py", "train.ipynb"])
def test_no_fix_changes_an_ipython_line(name: str) -> None:
    loops = "for step in range(3):\n    !nvidia-smi\n    optimizer.step()\n"
    plain = "for step in range(3):\n    optimizer.step()\n"
    code = HEADER + "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n" + loops + plain
    text = notebook(code) if name.endswith(".ipynb") else code
    write(name, text)
    result = lint("--isolated", "--fix", "--select", "SF996", "--output-format", "concise", name)
    assert result.exit_code == 2
    where = f"{name}:cell 1:5:1" if name.endswith(".ipynb") else f"{name}:5:1"
    assert result.stderr == (
        f"sfdoctor: error: {where}: SF996 fix dropped: it would change an IPython line or a notebook cell boundary\n"
    )
    fixed = Path(name).read_text(encoding="utf-8")
    if name.endswith(".ipynb"):
        fixed = "".join(json.loads(fixed)["cells"][0]["source"])
    assert fixed == code.replace(plain, "pass\n")  # the other loop's fix is applied
