"""CI integration through the real CLI: SARIF, GitHub annotations, -o, pre-commit, --diff-base."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import jsonschema
import pytest
from cli_helpers import lint, write
from click.testing import CliRunner

from sfdoctor.catalogue import rule_document
from sfdoctor.cli import cli
from sfdoctor.findings import Finding, Location, RuleInfo
from sfdoctor.output import github_annotation

REPO = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
)
# SF110 at row 5 (with a related location), SF301 at row 7.
TWO_RULES = """\
import schedulefree
import torch

model = torch.nn.Linear(4, 2)
optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)
encoder = torch.nn.Linear(4, 4)
frozen = schedulefree.SGDScheduleFree([{"params": encoder.parameters(), "lr": 0.0}], lr=0.5)
"""
# lr is 0 for one value of a flag: a *possible* SF110, reported as a warning.
POSSIBLE = """\
import argparse
import schedulefree

parser = argparse.ArgumentParser()
parser.add_argument("--preset", default="small")
args = parser.parse_args()
lr = 0.0 if args.preset == "frozen" else 1e-3
optimizer = schedulefree.AdamWScheduleFree([], lr=lr)
"""
CLEAN = "import schedulefree\noptimizer = schedulefree.AdamWScheduleFree([], lr=1e-3)\n"
ZERO_LR = "import schedulefree\noptimizer = schedulefree.AdamWScheduleFree([], lr=0.0)\n"


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def sarif(*args: str) -> dict:
    result = lint("--output-format", "sarif", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def validate(log: dict) -> None:
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)


def git(*args: str) -> str:
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **identity},
        check=True,
    )
    return done.stdout


# -- SARIF --------------------------------------------------------------------------------------


def test_the_schema_file_is_the_official_sarif_2_1_0_schema() -> None:
    jsonschema.Draft4Validator.check_schema(SARIF_SCHEMA)
    assert SARIF_SCHEMA["id"] == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    )
    with pytest.raises(jsonschema.ValidationError):
        validate({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]})  # a driver needs a name


def test_sarif_is_valid_and_carries_rules_results_and_locations() -> None:
    write("train.py", TWO_RULES)
    write("requirements.txt", "schedulefree==1.2.1\n")
    log = sarif()
    validate(log)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert (
        driver["name"] == "sfdoctor" and driver["version"] and driver["informationUri"].startswith("https://")
    )
    rules = driver["rules"]
    results = run["results"]
    assert sorted(rule["id"] for rule in rules) == sorted({result["ruleId"] for result in results})
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        ("SF001", 1),
        ("SF002", 1),
        ("SF110", 5),
        ("SF301", 7),
    ]
    for result in results:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert result["level"] == rule["defaultConfiguration"]["level"]
    sf110 = rules[results[2]["ruleIndex"]]
    assert sf110["name"] == "zero-lr"
    assert sf110["helpUri"].endswith("/rules/SF110.md")
    assert sf110["help"]["markdown"] == rule_document("SF110")
    assert sf110["fullDescription"]["text"].startswith("Flags a ScheduleFree optimizer")
    assert results[3]["level"] == "error" and results[1]["level"] == "warning"  # SF301 error, SF002 warning
    location = results[2]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "train.py", "uriBaseId": "%SRCROOT%"}
    column = TWO_RULES.splitlines()[4].index("0.0") + 1
    assert location["region"] == {
        "startLine": 5,
        "startColumn": column,
        "endLine": 5,
        "endColumn": column + 3,
    }
    assert results[2]["relatedLocations"][0]["message"]["text"] == "optimizer created here"


def test_sarif_possible_finding_is_a_warning_and_says_so() -> None:
    write("train.py", POSSIBLE)
    [result] = sarif()["runs"][0]["results"]
    assert result["level"] == "warning" and result["message"]["text"].startswith("possible: ")


def test_sarif_without_findings_is_valid() -> None:
    write("train.py", CLEAN)
    log = sarif()
    validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_sarif_paths_are_relative_to_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git("init", "-q")
    write("pkg/my train.py", ZERO_LR)
    monkeypatch.chdir("pkg")
    [result] = sarif()["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "pkg/my%20train.py"


def test_sarif_fingerprints_survive_line_shifts_and_tell_findings_apart() -> None:
    write("a.py", ZERO_LR)
    write("b.py", ZERO_LR)
    before = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r
        for r in sarif()["runs"][0]["results"]
    }
    write("a.py", "# a new comment line\n" + ZERO_LR)
    after = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r
        for r in sarif()["runs"][0]["results"]
    }
    assert after["a.py"]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert after["a.py"]["partialFingerprints"] == before["a.py"]["partialFingerprints"]
    assert after["a.py"]["partialFingerprints"] != after["b.py"]["partialFingerprints"]


# -- GitHub annotations -------------------------------------------------------------------------


def test_github_format_is_one_workflow_command_per_finding() -> None:
    write("train.py", TWO_RULES)
    write("extra.py", POSSIBLE)
    result = lint("--output-format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    column = TWO_RULES.splitlines()[4].index("0.0") + 1
    assert lines[1].startswith(
        f"::error file=train.py,line=5,col={column},endLine=5,endColumn={column + 3},title=sfdoctor (SF110)::"
        "AdamWScheduleFree gets lr 0.0"
    )
    assert lines[0].startswith("::warning file=extra.py,line=8,") and "::possible: " in lines[0]
    assert len(lines) == 3 and all(re.fullmatch(r"::(error|warning) [^:]+::[^\n]+", line) for line in lines)


def test_github_escaping_of_data_and_properties(tmp_path: Path) -> None:
    rule = RuleInfo("SF110", "zero-lr", "error", "")
    finding = Finding(
        rule,
        "100% wrong\r\nsecond line",
        "dir,with:odd%name.py",
        Location(1, 2),
        Location(1, 3),
        notes=("a note",),
    )
    assert github_annotation(finding, tmp_path) == (
        "::error file=dir%2Cwith%3Aodd%25name.py,line=1,col=2,endLine=1,endColumn=3,title=sfdoctor (SF110)"
        "::100%25 wrong%0D%0Asecond line%0Aa note"
    )


# -- output file, pre-commit, --force-exclude ---------------------------------------------------


def test_output_file_gets_the_report_and_stdout_stays_empty() -> None:
    write("train.py", ZERO_LR)
    result = lint("--output-format", "sarif", "-o", "report.sarif")
    assert result.exit_code == 1 and result.stdout == ""
    validate(json.loads(Path("report.sarif").read_text(encoding="utf-8")))
    result = lint("--output-file", "report.txt", "--output-format", "concise")
    assert result.stdout == ""
    assert Path("report.txt").read_text(encoding="utf-8").startswith("train.py:2:")


def test_unwritable_output_file_is_a_one_line_error() -> None:
    write("train.py", ZERO_LR)
    result = lint("-o", "no/such/folder/report.txt")
    assert result.exit_code == 2 and result.stderr.startswith("sfdoctor: error: cannot write no/such/folder")


def test_pre_commit_hook_definition_runs_as_pre_commit_would() -> None:
    text = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    hook = dict(re.findall(r"^\s*-?\s*(\w+): (.+)$", text, re.MULTILINE))
    assert hook["id"] == "sfdoctor" and hook["language"] == "python"
    assert hook["types"] == "[python]" and hook["require_serial"] == "false"
    entry = shlex.split(hook["entry"])
    assert entry[:2] == ["sfdoctor", "lint"]
    write("pyproject.toml", '[tool.sfdoctor]\nextend-exclude = ["third_party/"]\n')
    write("train.py", ZERO_LR)
    write("third_party/vendored.py", ZERO_LR)
    # pre-commit passes every staged file by name; the configured excludes must still apply
    result = CliRunner().invoke(
        cli, [*entry[1:], "--output-format", "concise", "train.py", "third_party/vendored.py"]
    )
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:-1]] == ["train.py"]


def test_force_exclude_only_matters_for_files_named_on_the_command_line() -> None:
    write("build/generated.py", ZERO_LR)
    assert lint("build/generated.py").exit_code == 1
    assert lint("--force-exclude", "build/generated.py").exit_code == 0


# -- --diff-base --------------------------------------------------------------------------------


def test_diff_base_lints_only_files_changed_on_the_branch_and_uncommitted() -> None:
    git("init", "-q", "-b", "main")
    for name in ("old.py", "touched.py", "edited.py"):
        write(name, ZERO_LR)
    git("add", ".")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "feature")
    write("touched.py", ZERO_LR + "# changed on the branch\n")
    write("added.py", ZERO_LR)
    git("add", ".")
    git("commit", "-q", "-m", "change")
    write("edited.py", ZERO_LR + "# not committed yet\n")
    write("untracked.py", ZERO_LR)
    result = lint("--output-format", "json", "--diff-base", "main")
    assert result.exit_code == 1, result.output
    linted = sorted({f["filename"] for f in json.loads(result.stdout)})
    assert linted == ["added.py", "edited.py", "touched.py", "untracked.py"]
    assert lint("--diff-base", "main", "old.py").exit_code == 0  # named but unchanged: not linted


def test_diff_base_outside_a_repository_or_with_an_unknown_revision_is_an_error() -> None:
    write("train.py", ZERO_LR)
    result = lint("--diff-base", "main")
    assert result.exit_code == 2 and "--diff-base needs a git repository" in result.stderr
    git("init", "-q")
    result = lint("--diff-base", "no-such-branch")
    assert result.exit_code == 2 and "unknown revision 'no-such-branch'" in result.stderr
