"""`[tool.sfdoctor]` configuration, through the real CLI on real files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import lint, write

from sfdoctor.config import load_config

ZERO_LR = "import schedulefree\noptimizer = schedulefree.AdamWScheduleFree([], lr=0.0)\n"  # SF110, row 2
# SF110 (row 2) and SF301 (row 3).
TWO_RULES = ZERO_LR + 'frozen = schedulefree.SGDScheduleFree([{"params": [], "lr": 0.0}], lr=0.5)\n'


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def found(*args: str) -> list[tuple[str, str, int]]:
    result = lint("--output-format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return [(f["filename"], f["code"], f["location"]["row"]) for f in json.loads(result.stdout)]


def test_select_and_ignore_come_from_the_nearest_pyproject_above(monkeypatch: pytest.MonkeyPatch) -> None:
    write("pyproject.toml", '[tool.sfdoctor]\nignore = ["SF110"]\n')
    write("src/train.py", TWO_RULES)
    monkeypatch.chdir("src")
    assert found() == [("train.py", "SF301", 3)]


def test_select_from_the_lint_table_and_extend_select() -> None:
    write("pyproject.toml", '[tool.sfdoctor.lint]\nselect = ["SF3"]\nextend-select = ["SF110"]\n')
    write("train.py", TWO_RULES)
    assert found() == [("train.py", "SF110", 2), ("train.py", "SF301", 3)]
    write("pyproject.toml", '[tool.sfdoctor.lint]\nselect = ["SF3"]\n')
    assert found() == [("train.py", "SF301", 3)]


def test_command_line_select_replaces_the_configured_one() -> None:
    write("pyproject.toml", '[tool.sfdoctor]\nselect = ["SF3"]\n')
    write("train.py", TWO_RULES)
    assert found("--select", "SF110") == [("train.py", "SF110", 2)]


def test_per_file_ignores_are_globs_relative_to_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        "pyproject.toml",
        """\
        [tool.sfdoctor.per-file-ignores]
        "experiments/*.py" = ["SF110"]
        "conftest.py" = ["SF3"]
        """,
    )
    for name in ("experiments/a.py", "train.py", "tests/conftest.py"):
        write(name, TWO_RULES)
    monkeypatch.chdir("tests")  # patterns stay relative to the configuration's folder, not the cwd
    relative = [
        (Path(name).resolve().relative_to(tmp_path).as_posix(), code, row) for name, code, row in found("..")
    ]
    assert sorted(relative) == [
        ("experiments/a.py", "SF301", 3),
        ("tests/conftest.py", "SF110", 2),
        ("train.py", "SF110", 2),
        ("train.py", "SF301", 3),
    ]


def test_exclude_replaces_the_default_list_and_extend_exclude_adds_to_it() -> None:
    for name in ("train.py", "build/gen.py", "vendored/sf.py"):
        write(name, ZERO_LR)
    assert [name for name, _, _ in found()] == ["train.py", "vendored/sf.py"]  # build/ is excluded by default
    write("pyproject.toml", '[tool.sfdoctor]\nextend-exclude = ["vendored"]\n')
    assert [name for name, _, _ in found()] == ["train.py"]
    write("pyproject.toml", '[tool.sfdoctor]\nexclude = ["vendored/"]\n')
    assert [name for name, _, _ in found()] == ["build/gen.py", "train.py"]


def test_output_format_from_the_configuration() -> None:
    write("pyproject.toml", '[tool.sfdoctor]\noutput-format = "concise"\n')
    write("train.py", ZERO_LR)
    result = lint()
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("train.py:2:")
    assert "│" not in result.stdout  # no code frame: not the full format


def test_optimizer_factories_make_a_factory_call_an_optimizer() -> None:
    write(
        "train.py",
        """\
        import torch
        from mypkg.optim import build_optimizer

        model = torch.nn.Linear(4, 2)
        optimizer = build_optimizer(model)  # builds a ScheduleFree optimizer in another module
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        """,
    )
    assert found() == []
    write("pyproject.toml", '[tool.sfdoctor.lint]\noptimizer-factories = ["mypkg.optim.build_optimizer"]\n')
    assert found() == [("train.py", "SF101", 6)]


def test_explicit_config_file_and_standalone_table(tmp_path: Path) -> None:
    write("pyproject.toml", '[tool.sfdoctor]\nignore = ["SF110"]\n')
    write("ci/sfdoctor.toml", 'select = ["SF110"]\n')  # a file of its own needs no [tool.sfdoctor]
    write("ci/pyproject-like.toml", '[tool.sfdoctor]\nselect = ["SF3"]\n')
    write("train.py", TWO_RULES)
    assert found("--config", "ci/sfdoctor.toml") == [("train.py", "SF110", 2)]
    assert found("--config", "ci/pyproject-like.toml") == [("train.py", "SF301", 3)]


def test_isolated_ignores_the_configuration_even_a_broken_one() -> None:
    write("pyproject.toml", '[tool.sfdoctor]\nselekt = ["SF3"]\n')
    write("train.py", TWO_RULES)
    assert found("--isolated") == [("train.py", "SF110", 2), ("train.py", "SF301", 3)]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[tool.sfdoctor]\nselekt = ["SF3"]\n', "unknown key 'selekt' in [tool.sfdoctor]"),
        ('[tool.sfdoctor]\nselect = "SF3"\n', "'select' in [tool.sfdoctor] must be a list"),
        ("[tool.sfdoctor]\nignore = [3]\n", "'ignore' in [tool.sfdoctor] must be a list of strings"),
        (
            '[tool.sfdoctor.lint]\noptimizer-factories = "f"\n',
            "'optimizer-factories' in [tool.sfdoctor.lint]",
        ),
        ('[tool.sfdoctor.replay]\nsteps = "10"\n', "'steps' in [tool.sfdoctor.replay] must be a int"),
        (
            '[tool.sfdoctor.replay]\nscript = "t.py"\nsecs = 3\n',
            "unknown key 'secs' in [tool.sfdoctor.replay]",
        ),
        ('[tool.sfdoctor]\noutput-format = "xml"\n', "'output-format' must be one of"),
        ('[tool.sfdoctor]\nselect = ["SF9"]\n', "'select' in"),
        ('[tool.sfdoctor.per-file-ignores]\n"a.py" = "SF110"\n', "'per-file-ignores' entry 'a.py'"),
        ('[tool.sfdoctor.per-file-ignores]\n"a.py" = ["XX1"]\n', "'per-file-ignores' in"),
        (
            '[tool.sfdoctor]\nselect = ["SF1"]\n[tool.sfdoctor.lint]\nselect = ["SF3"]\n',
            "'select' is set in both",
        ),
        ("[tool.sfdoctor\n", "cannot read"),
    ],
)
def test_bad_configuration_is_a_one_line_error_naming_the_key(toml: str, named: str) -> None:
    write("pyproject.toml", toml)
    write("train.py", ZERO_LR)
    result = lint()
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert result.stderr.startswith("sfdoctor: error: ") and len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file_is_an_error() -> None:
    result = lint("--config", "nope.toml")
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr


def test_replay_table_is_read_relative_to_the_configuration(tmp_path: Path) -> None:
    write(
        "pyproject.toml",
        '[tool.sfdoctor.replay]\nscript = "scripts/train.py"\nargs = ["--fast"]\nsteps = 7\n',
    )
    (tmp_path / "deep" / "er").mkdir(parents=True)
    config = load_config(start=tmp_path / "deep" / "er")
    assert config.path == tmp_path / "pyproject.toml"
    assert config.root / config.replay["script"] == tmp_path / "scripts" / "train.py"
    assert config.replay == {"script": "scripts/train.py", "args": ["--fast"], "steps": 7}
    assert load_config(isolated=True, start=tmp_path).replay == {}
