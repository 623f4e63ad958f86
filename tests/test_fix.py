"""`sfdoctor lint --fix / --diff / --unsafe-fixes / --show-fixes` on real files, through the real CLI.

The real rules with fixes are used where they exist (SF205: remove mode calls on a closure
optimizer, safe). Fixes that are broken on purpose (one that does not parse, one that never settles)
and an unsafe one come from small real rules defined here and removed again after each test.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import libcst as cst
import pytest
from cli_helpers import lint

from sfdoctor.findings import Edit, Fix, RuleInfo
from sfdoctor.lint.fixes import fix as fix_module
from sfdoctor.lint.rule import Rule, discover_rules

CLOSURE = """\
import torch
import schedulefree

model = torch.nn.Linear(4, 2)
optimizer = schedulefree.SGDScheduleFreeClosure(model.parameters(), lr=0.1)
optimizer.train()


def closure():
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).sum()
    loss.backward()
    return loss


for _ in range(3):
    optimizer.step(closure)
if True:
    optimizer.eval()
"""
CLOSURE_FIXED = CLOSURE.replace("optimizer.train()\n", "").replace("    optimizer.eval()", "    pass")
ZERO_LR = "import schedulefree\noptimizer = schedulefree.AdamWScheduleFree([], lr=0.0)\n"


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def codes(path: str) -> list[str]:
    result = lint("--output-format", "concise", "-q", path)
    return [line.split(": ")[1].split()[0] for line in result.stdout.splitlines()]


def test_fix_applies_safe_fixes_and_a_second_run_changes_nothing() -> None:
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    result = lint("--fix", "--show-fixes", "train.py")
    assert result.exit_code == 0, result.output
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE_FIXED
    cst.parse_module(CLOSURE_FIXED)
    assert "Fixed 2 findings in 1 file." in result.stdout
    assert "2 × SF205 (closure-mode-misuse)" in result.stdout
    assert codes("train.py") == []
    before = os.stat("train.py").st_mtime_ns
    again = lint("--fix", "train.py")
    assert again.exit_code == 0 and "Fixed" not in again.stdout
    assert os.stat("train.py").st_mtime_ns == before


def test_fix_leaves_findings_without_a_fix_and_exits_1() -> None:
    Path("train.py").write_text(CLOSURE + ZERO_LR, encoding="utf-8")
    result = lint("--fix", "--output-format", "concise", "train.py")
    assert result.exit_code == 1
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE_FIXED + ZERO_LR
    assert [
        line.split(": ")[1][:5] for line in result.stdout.splitlines() if line.startswith("train.py:")
    ] == ["SF110"]


def test_diff_prints_the_change_and_writes_nothing() -> None:
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    result = lint("--diff", "train.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("--- a/train.py\n+++ b/train.py\n@@ ")
    assert "-optimizer.train()\n" in result.stdout and "-    optimizer.eval()\n+    pass\n" in result.stdout
    assert "Would fix 2 findings in 1 file." in result.stderr
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE
    Path("clean.py").write_text(CLOSURE_FIXED, encoding="utf-8")
    clean = lint("--diff", "clean.py")
    assert clean.exit_code == 0 and clean.stdout == ""


def test_no_fix_without_the_option_but_a_hint() -> None:
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    result = lint("train.py")
    assert result.exit_code == 1
    assert "[*] 2 fixable with --fix." in result.stdout
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE


def test_crlf_encoding_and_permissions_are_kept() -> None:
    latin1 = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + CLOSURE
    Path("train.py").write_bytes(latin1.replace("\n", "\r\n").encode("latin-1"))
    os.chmod("train.py", 0o640)
    assert lint("--fix", "train.py").exit_code == 0
    data = Path("train.py").read_bytes()
    expected = (
        ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + CLOSURE_FIXED).replace("\n", "\r\n").encode("latin-1")
    )
    assert data == expected
    assert stat.S_IMODE(os.stat("train.py").st_mode) == 0o640
    assert [p.name for p in Path(".").iterdir() if p.name != ".sfdoctor_cache"] == ["train.py"]  # no temporary file left behind


def test_utf8_bom_is_kept() -> None:
    Path("train.py").write_bytes(b"\xef\xbb\xbf" + CLOSURE.encode())
    assert lint("--fix", "train.py").exit_code == 0
    assert Path("train.py").read_bytes() == b"\xef\xbb\xbf" + CLOSURE_FIXED.encode()


def test_read_only_file_is_reported_not_written() -> None:
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    os.chmod("train.py", 0o444)
    result = lint("--fix", "--output-format", "concise", "train.py")
    assert result.exit_code == 2
    assert "sfdoctor: error: train.py: fixes not written: the file is read-only" in result.stderr
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE
    assert result.stdout.count("SF205") == 2  # the findings are still reported


def test_file_changed_on_disk_after_reading_is_not_clobbered(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    edited_meanwhile = CLOSURE + "# saved from the editor while sfdoctor was fixing\n"
    compute_fixes = fix_module.fixed_text

    def fixed_text_while_someone_saves(*args, **kwargs):
        outcome = compute_fixes(*args, **kwargs)
        Path("train.py").write_text(edited_meanwhile, encoding="utf-8")
        return outcome

    monkeypatch.setattr(fix_module, "fixed_text", fixed_text_while_someone_saves)
    result = lint("--fix", "train.py")
    assert result.exit_code == 2
    assert "train.py: fixes not written: the file changed on disk since it was read" in result.stderr
    assert Path("train.py").read_text(encoding="utf-8") == edited_meanwhile


def test_per_file_ignores_also_stop_the_fixes() -> None:
    Path("pyproject.toml").write_text(
        '[tool.sfdoctor.per-file-ignores]\n"train.py" = ["SF205"]\n', encoding="utf-8"
    )
    Path("train.py").write_text(CLOSURE, encoding="utf-8")
    assert lint("--fix", "train.py").exit_code == 0
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE


# -- rules with special fixes, defined for one test each ----------------------------------------


def _replace_call(rule: Rule, name: str, replacement: str, applicability: str) -> None:
    for site in rule.context.index.calls:
        if site.node.func.deep_equals(cst.Name(name)):
            start, end = rule.context.location(site.node)
            fix = Fix(f"replace {name}()", applicability, (Edit(replacement, start, end),))
            rule.report(site.node, f"{name}() called", fix=fix)


# These rules have no `info` until a test enables one: rule discovery skips them otherwise.
class BrokenFix(Rule):
    def check(self) -> None:
        _replace_call(self, "broken", "broken(", "safe")


class UnsafeFix(Rule):
    def check(self) -> None:
        _replace_call(self, "old_api", "prepare()\nnew_api()", "unsafe")


class EndlessFix(Rule):
    def check(self) -> None:
        _replace_call(self, "ping", "pong()", "safe")
        _replace_call(self, "pong", "ping()", "safe")


class GrowingFix(Rule):
    def check(self) -> None:
        _replace_call(self, "grow", "grow()\npass", "safe")  # grow() stays: reported and fixed again


class DoublingFix(Rule):
    def check(self) -> None:
        _replace_call(self, "double", "double()\ndouble()", "safe")


TEST_RULES = {
    "SF991": (BrokenFix, RuleInfo("SF991", "test-broken-fix", "error", "A fix whose result does not parse.")),
    "SF992": (UnsafeFix, RuleInfo("SF992", "test-unsafe-fix", "warning", "An unsafe fix.")),
    "SF993": (
        EndlessFix,
        RuleInfo("SF993", "test-endless-fix", "warning", "Two fixes that undo each other."),
    ),
    "SF994": (GrowingFix, RuleInfo("SF994", "test-growing-fix", "warning", "A fix that is needed again.")),
    "SF995": (DoublingFix, RuleInfo("SF995", "test-doubling-fix", "warning", "A fix that doubles itself.")),
}


@pytest.fixture
def test_rule(request: pytest.FixtureRequest):
    rule, info = TEST_RULES[request.param]
    rule.info = info
    discover_rules.cache_clear()
    yield rule
    del rule.info
    discover_rules.cache_clear()


@pytest.mark.parametrize("test_rule", ["SF991"], indirect=True)
def test_fix_that_would_not_parse_is_dropped_and_the_others_applied(test_rule) -> None:
    source = CLOSURE + "broken()\n"
    Path("train.py").write_text(source, encoding="utf-8")
    result = lint("--fix", "--output-format", "concise", "train.py")
    assert result.exit_code == 2
    assert "sfdoctor: error: train.py:20:1: SF991 fix dropped: the result would not parse" in result.stderr
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE_FIXED + "broken()\n"
    assert "SF991" in result.stdout  # still reported


@pytest.mark.parametrize("test_rule", ["SF992"], indirect=True)
def test_unsafe_fixes_need_their_option_and_new_lines_get_the_files_line_ending(test_rule) -> None:
    source = b"import schedulefree\r\nold_api()\r\n"
    Path("train.py").write_bytes(source)
    hint = lint("train.py")
    assert "1 more fixable with --fix --unsafe-fixes." in hint.stdout
    assert lint("--fix", "train.py").exit_code == 1
    assert Path("train.py").read_bytes() == source
    diff = lint("--diff", "--unsafe-fixes", "train.py")
    assert diff.exit_code == 1 and "+new_api()" in diff.stdout
    assert lint("--fix", "--unsafe-fixes", "train.py").exit_code == 0
    assert Path("train.py").read_bytes() == b"import schedulefree\r\nprepare()\r\nnew_api()\r\n"


@pytest.mark.parametrize("test_rule", ["SF993"], indirect=True)
def test_fixes_that_undo_each_other_are_dropped_and_the_others_applied(test_rule) -> None:
    Path("train.py").write_text(CLOSURE + "ping()\n", encoding="utf-8")
    result = lint("--fix", "train.py")
    assert result.exit_code == 2
    dropped = result.stderr.splitlines()
    assert len(dropped) == 2 and all(line.endswith(": SF993 fix dropped: it did not settle") for line in dropped)
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE_FIXED + "ping()\n"


@pytest.mark.parametrize(("test_rule", "call"), [("SF994", "grow"), ("SF995", "double")], indirect=["test_rule"])
def test_a_fix_applied_again_in_every_round_is_dropped_alone(test_rule, call: str) -> None:
    Path("train.py").write_text(CLOSURE + f"{call}()\n", encoding="utf-8")
    result = lint("--fix", "train.py")
    assert result.exit_code == 2
    assert result.stderr == f"sfdoctor: error: train.py:20:1: {test_rule.info.code} fix dropped: it did not settle\n"
    assert Path("train.py").read_text(encoding="utf-8") == CLOSURE_FIXED + f"{call}()\n"


SAVE_AT_END = """\
import torch
import schedulefree

def main():
\tmodel = torch.nn.Linear(4, 2)
\toptimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)
\toptimizer.train()
\tfor _ in range(3):
\t\tmodel(torch.randn(8, 4)).sum().backward()
\t\toptimizer.step()
\ttorch.save(model.state_dict(), "model.pt")"""


def test_inserted_lines_take_the_files_indentation_and_line_endings_without_a_final_newline() -> None:
    """SF203's fix adds a line above and below the last line of a tab-indented CRLF file that does
    not end in a line break."""
    Path("train.py").write_bytes(SAVE_AT_END.replace("\n", "\r\n").encode())
    assert codes("train.py") == ["SF203"]
    lint("--fix", "--unsafe-fixes", "train.py")
    expected = SAVE_AT_END.replace("\ttorch.save", "\toptimizer.eval()\n\ttorch.save") + "\n\toptimizer.train()"
    assert Path("train.py").read_bytes() == expected.replace("\n", "\r\n").encode()
    assert codes("train.py") == []
