"""`sfdoctor lint` and `sfdoctor rule` through the real CLI, on real files written to tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import lint, write
from click.testing import CliRunner

from sfdoctor.cli import cli
from sfdoctor.findings import RuleInfo
from sfdoctor.lint.checker import rule_infos
from sfdoctor.lint.rule import Rule, discover_rules

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"

ZERO_LR_LINE = "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)"
ZERO_LR = f"import schedulefree\nimport torch\n\nmodel = torch.nn.Linear(4, 2)\n{ZERO_LR_LINE}\n"
CLEAN = ZERO_LR.replace("lr=0.0", "lr=1e-3")
# Two different rules, in two families: SF110 (line 5) and SF301 (line 7).
TWO_RULES = ZERO_LR + (
    "encoder, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)\n"
    'tuned = schedulefree.SGDScheduleFree([{"params": encoder.parameters(), "lr": 0.0}, '
    '{"params": head.parameters()}], lr=0.5)\n'
)


def lint_json(*args: str | Path) -> list[dict]:
    result = lint("--output-format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def codes_and_rows(*args: str | Path) -> list[tuple[str, int]]:
    return [(f["code"], f["location"]["row"]) for f in lint_json(*args)]


pytestmark = pytest.mark.usefixtures("in_tmp_path")


# -- output formats -----------------------------------------------------------------------------


def test_full_format_has_location_line_code_frame_related_and_summary() -> None:
    write("train.py", ZERO_LR)
    result = lint("train.py")
    column = ZERO_LR_LINE.index("0.0") + 1
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert re.fullmatch(rf"train\.py:5:{column}: SF110 \[error\] .*lr 0.*", lines[0])
    frame = [line for line in lines if ZERO_LR_LINE in line and re.match(r"\W*5 ", line)]
    assert frame, result.stdout  # the reported line with its number
    assert any("model = torch.nn.Linear(4, 2)" in line for line in lines[1:4])  # context above it
    assert "optimizer created here at train.py:5" in result.stdout
    assert lines[-1] == "Found 1 finding (1 error) in 1 file checked."


def test_concise_format_is_one_line_per_finding_and_summary() -> None:
    write("a.py", TWO_RULES)
    result = lint("--output-format", "concise", "a.py")
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert [re.match(r"a\.py:(\d+):\d+: (SF\d+) \[error\] ", line).groups() for line in lines[:2]] == [
        ("5", "SF110"),
        ("7", "SF301"),
    ]
    assert lines[2:] == ["Found 2 findings (2 errors) in 1 file checked.", "1 more fixable with --fix --unsafe-fixes."]


def test_json_format_has_ruff_compatible_keys_and_one_based_positions() -> None:
    write("train.py", ZERO_LR)
    result = lint("--output-format", "json", "train.py")
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)  # nothing but the JSON document on stdout
    start = ZERO_LR_LINE.index("0.0") + 1
    assert {
        "code", "message", "filename", "location", "end_location", "fix", "url", "name", "severity",
        "possible", "related",
    } <= finding.keys()
    assert finding["code"] == "SF110"
    assert finding["name"] == "zero-lr"
    assert finding["severity"] == "error"
    assert finding["possible"] is False
    assert finding["filename"] == "train.py"
    assert finding["location"] == {"row": 5, "column": start}
    assert finding["end_location"] == {"row": 5, "column": start + len("0.0")}
    assert finding["url"].endswith("/rules/SF110.md")
    assert finding["fix"] is None
    assert finding["related"] == [
        {
            "message": "optimizer created here",
            "filename": "train.py",
            "location": {"row": 5, "column": ZERO_LR_LINE.index("schedulefree.") + 1},
        }
    ]


def test_possible_finding_is_a_warning_in_json() -> None:
    write(
        "train.py",
        """\
        import argparse
        import schedulefree
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--preset", default="small")
        args = parser.parse_args()
        lr = 0.0 if args.preset == "frozen" else 1e-3
        model = torch.nn.Linear(4, 2)
        optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=lr)
        """,
    )
    [finding] = lint_json("train.py")
    assert (finding["code"], finding["location"]["row"]) == ("SF110", 10)
    assert finding["possible"] is True
    assert finding["severity"] == "warning"


# -- selection, statistics, exit status --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], [("SF110", 5), ("SF301", 7)]),
        (["--select", "SF110"], [("SF110", 5)]),
        (["--select", "SF3"], [("SF301", 7)]),
        (["--select", "SF1,SF3"], [("SF110", 5), ("SF301", 7)]),
        (["--select", "SF1", "--select", "SF301"], [("SF110", 5), ("SF301", 7)]),
        (["--ignore", "SF110"], [("SF301", 7)]),
        (["--ignore", "SF1"], [("SF301", 7)]),
        (["--select", "SF1", "--ignore", "SF110"], []),
        (["--select", "SF110", "--ignore", "SF1"], [("SF110", 5)]),  # the longer prefix wins
        (["--select", "ALL", "--ignore", "SF30"], [("SF110", 5)]),
    ],
)
def test_select_and_ignore(options: list[str], expected: list[tuple[str, int]]) -> None:
    write("a.py", TWO_RULES)
    assert codes_and_rows(*options, "a.py") == expected


def test_select_with_no_findings_exits_zero() -> None:
    write("a.py", TWO_RULES)
    result = lint("--select", "SF4", "a.py")
    assert result.exit_code == 0
    assert result.stdout.strip() == "All checks passed! (1 file checked)"


def test_unknown_rule_in_select_is_a_usage_error() -> None:
    write("a.py", TWO_RULES)
    result = lint("--select", "XYZ1", "a.py")
    assert result.exit_code == 2
    assert "XYZ1" in result.stderr


def test_statistics_counts_findings_per_rule() -> None:
    write("a.py", TWO_RULES)
    write("b.py", ZERO_LR)
    result = lint("--statistics", "a.py", "b.py")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"\s*2  SF110    zero-lr", lines[0])
    assert re.fullmatch(r"\s*1  SF301  \* freeze-by-zero-lr", lines[1])  # `*`: fixable
    assert "b.py:" not in result.stdout  # counts, not findings


def test_exit_zero_keeps_the_findings() -> None:
    write("a.py", ZERO_LR)
    result = lint("--exit-zero", "a.py")
    assert result.exit_code == 0
    assert "a.py:5:" in result.stdout


def test_quiet_prints_findings_without_summary() -> None:
    write("a.py", ZERO_LR)
    write("clean.py", CLEAN)
    noisy, quiet = lint("a.py"), lint("--quiet", "a.py")
    assert quiet.exit_code == 1
    assert quiet.stdout.startswith("a.py:5:")
    assert "Found 1 finding" in noisy.stdout and "Found" not in quiet.stdout
    assert lint("-q", "clean.py").stdout == ""


def test_clean_file_exits_zero() -> None:
    write("clean.py", CLEAN)
    result = lint("clean.py")
    assert result.exit_code == 0
    assert result.stdout.strip() == "All checks passed! (1 file checked)"


def test_missing_path_is_a_one_line_error() -> None:
    write("clean.py", CLEAN)
    result = lint("clean.py", "missing.py")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["sfdoctor: error: missing.py: no such file or directory"]
    assert result.stdout == ""


def test_unknown_option_is_a_usage_error() -> None:
    assert lint("--no-such-option").exit_code == 2


# -- suppression --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "suppressed"),
    [
        ("  # noqa: SF110", True),
        ("  # noqa: SF113, SF110", True),
        ("  # noqa", True),
        ("  # NOQA:SF110", True),
        ("  # noqa: SF999", False),
        ("  # noqa: SF113", False),
        ("  # sfdoctor: ignore[SF110]", False),  # only on the line before a statement
    ],
)
def test_noqa_on_the_reported_line(comment: str, suppressed: bool) -> None:
    write("a.py", ZERO_LR.replace(ZERO_LR_LINE, ZERO_LR_LINE + comment))
    assert codes_and_rows("a.py") == ([] if suppressed else [("SF110", 5)])


def test_noqa_after_a_form_feed_line() -> None:
    """Rows count only line breaks: a form feed (a page break in old sources) starts no new line."""
    write("a.py", ZERO_LR.replace("\nmodel", "\f\nmodel").replace(ZERO_LR_LINE, ZERO_LR_LINE + "  # noqa: SF110"))
    assert codes_and_rows("a.py") == []


MULTI_LINE = """\
    import schedulefree
    import torch

    model = torch.nn.Linear(4, 2)
    {comment}
    optimizer = schedulefree.AdamWScheduleFree(
        model.parameters(),
        lr=0.0,
        weight_decay=0.01,
    )
    """


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("", [("SF110", 8)]),
        ("# sfdoctor: ignore[SF110]", []),
        ("# sfdoctor: ignore[SF113,SF110]", []),
        ("# sfdoctor: ignore", []),
        ("# sfdoctor: ignore[SF113]", [("SF110", 8)]),
        # a noqa comment covers its own line only
        ("# noqa: SF110", [("SF110", 8)]),
    ],
)
def test_ignore_comment_covers_the_whole_next_statement(comment: str, expected: list) -> None:
    write("a.py", MULTI_LINE.format(comment=comment))
    assert codes_and_rows("a.py") == expected


# -- awkward files ------------------------------------------------------------------------------


def test_syntax_error_is_reported_and_other_files_are_still_linted() -> None:
    write("a_clean.py", CLEAN)
    write("b_broken.py", "import torch\nfor step in range(3)\nimport schedulefree\n")
    write("c_bad.py", ZERO_LR)
    result = lint("--output-format", "json", ".")
    assert result.exit_code == 1
    found = [(f["filename"], f["code"], f["location"]["row"]) for f in json.loads(result.stdout)]
    assert found == [("b_broken.py", "SF000", 2), ("c_bad.py", "SF110", 5)]
    assert result.stderr == ""


def test_undeclared_non_utf8_file_is_a_syntax_error_not_a_crash() -> None:
    write("latin.py", ZERO_LR.encode() + "# r\xe9glage du taux\n".encode("latin-1"))
    result = lint("--output-format", "json", "latin.py")
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)
    assert finding["code"] == "SF000"
    assert "decode" in finding["message"]


def test_declared_latin1_file_is_linted() -> None:
    source = "# -*- coding: latin-1 -*-\n# r\xe9glage du taux\n" + ZERO_LR
    write("latin.py", source.encode("latin-1"))
    assert codes_and_rows("latin.py") == [("SF110", 7)]


def test_binary_file_is_a_syntax_error_not_a_crash() -> None:
    write("blob.py", b"\x89PNG\r\n\x1a\n\x00\x00schedulefree\x00\xff\xfe" + bytes(range(256)))
    result = lint("--output-format", "json", "blob.py")
    assert result.exit_code == 1, result.output
    assert [f["code"] for f in json.loads(result.stdout)] == ["SF000"]


def test_empty_file_is_clean() -> None:
    write("empty.py", "")
    result = lint("empty.py")
    assert result.exit_code == 0
    assert result.stdout.strip() == "All checks passed! (1 file checked)"


def test_directory_without_python_files_is_clean(tmp_path: Path) -> None:
    write("docs/README.md", "schedulefree.AdamWScheduleFree(params, lr=0.0)\n")
    result = lint("docs")
    assert result.exit_code == 0
    assert result.stdout.strip() == "All checks passed! (0 files checked)"


def test_gitignored_and_virtualenv_files_are_skipped() -> None:
    write(".gitignore", "generated/\n*_scratch.py\n")
    for name in (
        "src/train.py",
        "generated/train.py",
        "src/old_scratch.py",
        ".venv/lib/site.py",
        "env/lib/site.py",
        "build/lib/train.py",
        "src/__pycache__/train.py",
    ):
        write(name, ZERO_LR)
    write("env/pyvenv.cfg", "home = /usr/bin\n")
    assert [f["filename"] for f in lint_json(".")] == [str(Path("src/train.py"))]


def test_file_named_on_the_command_line_is_linted_even_if_ignored() -> None:
    write(".gitignore", "generated/\n")
    write("generated/train.py", ZERO_LR)
    assert codes_and_rows("generated/train.py") == [("SF110", 5)]


def test_linting_imports_neither_torch_nor_the_linted_file(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    write(
        "train.py",
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        f"raise SystemExit(99)\n{ZERO_LR}",
    )
    script = textwrap.dedent(
        """\
        import json, sys
        from sfdoctor.cli import cli
        try:
            cli.main(["lint", "--output-format", "json", "train.py"], standalone_mode=False)
        except SystemExit as exit:
            status = exit.code
        print(json.dumps({"status": status, "torch": "torch" in sys.modules}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    *findings, last = run.stdout.strip().splitlines()
    assert json.loads(last) == {"status": 1, "torch": False}
    assert [(f["code"], f["location"]["row"]) for f in json.loads("\n".join(findings))] == [("SF110", 8)]
    assert not marker.exists()


def test_parallel_run_gives_the_same_findings_as_one_job() -> None:
    for number in range(24):  # above the engine's threshold for worker processes
        lr = "0.0" if number % 3 else "-1e-3"  # SF110 or SF114, plus SF301, at varying rows
        write(f"pkg/train_{number:02}.py", "\n" * number + TWO_RULES.replace("lr=0.0", f"lr={lr}"))
    write("pkg/clean.py", CLEAN)
    serial = lint_json("--jobs", "1", "pkg")
    parallel = lint_json("--jobs", "2", "pkg")
    assert len(serial) == 48
    assert parallel == serial


@pytest.fixture
def crashing_rule():
    """A real rule that raises on one file; disabled again afterwards so no other test sees it."""

    class CrashesOnOneFile(Rule):
        info = RuleInfo("SF990", "test-crash", "error", "Raises on files named crash.py.")

        def check(self) -> None:
            if Path(self.context.filename).name == "crash.py":
                raise RuntimeError("rule bug")

    discover_rules.cache_clear()
    yield CrashesOnOneFile
    del CrashesOnOneFile.info  # discovery only picks up subclasses that define `info`
    discover_rules.cache_clear()


def test_crashing_rule_is_an_internal_error_and_the_run_goes_on(crashing_rule) -> None:
    assert crashing_rule in discover_rules()
    write("a_other.py", ZERO_LR)
    write("crash.py", ZERO_LR)
    result = lint("--output-format", "json", ".")
    assert result.exit_code == 2
    assert [(f["filename"], f["code"]) for f in json.loads(result.stdout)] == [
        ("a_other.py", "SF110"),
        ("crash.py", "SF110"),  # the other rules still ran on the crashing file
    ]
    [error] = result.stderr.strip().splitlines()
    assert error.startswith("sfdoctor: error: crash.py: internal error in SF990: RuntimeError: rule bug")


def test_crashing_rule_is_gone_after_its_test() -> None:
    assert "SF990" not in [info.code for info in rule_infos()]


# -- sfdoctor rule --------------------------------------------------------------------------------


def test_rule_prints_its_document() -> None:
    result = CliRunner().invoke(cli, ["rule", "sf110"])
    assert result.exit_code == 0
    assert result.stdout.strip() == (RULES_DIR / "SF110.md").read_text(encoding="utf-8").strip()


def test_rule_without_code_lists_every_rule() -> None:
    result = CliRunner().invoke(cli, ["rule"])
    assert result.exit_code == 0
    listed = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()}
    for info in rule_infos():
        assert listed[info.code] == [info.name, info.severity]
    assert "SF501" in listed  # replay codes are listed too


def test_unknown_rule_is_a_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["rule", "SF998"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["sfdoctor: error: unknown rule 'SF998'; `sfdoctor rule` lists them"]
