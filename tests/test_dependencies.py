"""SF001/SF002 on real dependency files in tmp_path, through the real CLI; their rule documents."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import re
from pathlib import Path

import pytest
import schedulefree
from cli_helpers import lint, write

from sfdoctor.lint.analysis.dependencies import KNOWN_RELEASES, UNGUARDED_RELEASES, is_unguarded

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
USES_SF = "import schedulefree\n\nmodel = None\noptimizer = schedulefree.SGDScheduleFree([], lr=1.0)\n"
CALLS_TRAIN = USES_SF + "optimizer.train()\n"


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def found(*args: str) -> list[tuple[str, str, int, int, int]]:
    result = lint("--output-format", "json", *args)
    assert result.exit_code in (0, 1), result.output
    return [
        (f["filename"], f["code"], f["location"]["row"], f["location"]["column"], f["end_location"]["column"])
        for f in json.loads(result.stdout)
    ]


@pytest.mark.parametrize(
    ("pin", "codes"),
    [
        ("schedulefree==1.2.1", ["SF001", "SF002"]),
        ("schedulefree==1.2.3", ["SF001", "SF002"]),  # the rollback release ships the 1.2.1 code
        ("schedulefree<=1.2.1", ["SF001", "SF002"]),
        ("schedulefree>=1.1,<1.2.2", ["SF001", "SF002"]),
        ("schedulefree==1.2.2", ["SF002"]),
        ("schedulefree~=1.2.4", ["SF002"]),
        ("schedulefree==1.2.*", ["SF002"]),
        ("schedulefree<1.3", ["SF002"]),  # admits the guarded 1.2.2 and 1.2.4+
        ("Schedule_Free==1.2.1", []),  # another project: `schedulefree` normalises to itself only
        ("schedulefree>=1.2", []),
        ("schedulefree>=1.3", []),
        ("schedulefree", []),
        ("schedulefree==9.0", []),  # no known release: nothing to say
    ],
)
def test_pins_in_requirements_txt(pin: str, codes: list[str]) -> None:
    write("requirements.txt", f"torch>=2.1\n{pin}  # the optimizer\n")
    write("train.py", USES_SF)
    assert found() == [("requirements.txt", code, 2, 1, 1 + len(pin)) for code in codes]


def test_requirements_txt_hashes_options_and_comments() -> None:
    write(
        "requirements-dev.txt",
        """\
        # schedulefree==1.2.1 in a comment is not a pin
        -e git+https://example.invalid/x.git#egg=schedulefree
        --index-url https://example.invalid/simple
          schedulefree==1.2.1 \\
            --hash=sha256:0000
        """,
    )
    write("train.py", CALLS_TRAIN)
    assert found() == [("requirements-dev.txt", "SF001", 4, 3, 22)]


def test_pyproject_dependencies_optional_dependencies_and_groups() -> None:
    write(
        "pyproject.toml",
        """\
        [project]
        name = "demo"
        dependencies = ["torch", "schedulefree==1.2.1"]

        [project.optional-dependencies]
        old = ['schedulefree<1.2.2; python_version >= "3.8"']
        new = ["schedulefree>=1.3"]

        [dependency-groups]
        dev = ["schedulefree==1.2.1"]
        """,
    )
    write("train.py", CALLS_TRAIN)
    assert found() == [
        ("pyproject.toml", "SF001", 3, 27, 46),
        ("pyproject.toml", "SF001", 6, 9, 52),
        ("pyproject.toml", "SF001", 10, 9, 28),
    ]


def test_setup_cfg_install_requires_and_extras() -> None:
    write(
        "setup.cfg",
        """\
        [metadata]
        name = demo
        description = needs schedulefree==1.2.1 (prose, not a requirement)

        [options]
        install_requires =
            torch
            schedulefree==1.2.3

        [options.extras_require]
        old = schedulefree==1.1
        """,
    )
    write("train.py", CALLS_TRAIN)
    assert found() == [("setup.cfg", "SF001", 8, 5, 24), ("setup.cfg", "SF001", 11, 7, 24)]


def test_environment_yml_conda_and_pip_entries() -> None:
    write(
        "environment.yml",
        """\
        name: demo
        dependencies:
          - python=3.11
          - conda-forge::schedulefree=1.2.1
          - schedulefree=1.2
          - pip:
            - schedulefree==1.2.3  # pinned by hand
        """,
    )
    write("train.py", CALLS_TRAIN)
    # conda's `=1.2` is any 1.2.x, which includes guarded releases
    assert found() == [("environment.yml", "SF001", 4, 5, 36), ("environment.yml", "SF001", 7, 7, 26)]


def test_sf002_needs_code_that_uses_schedulefree_and_never_calls_train() -> None:
    write("requirements.txt", "schedulefree~=1.2.4\n")
    assert found() == []  # no Python code: nothing to say about it
    write("train.py", USES_SF)
    assert [code for _, code, *_ in found()] == ["SF002"]
    write("eval.py", "def evaluate(state):\n    state.optimizers[0].train()\n")
    assert found() == []


def test_sf002_counts_a_config_that_names_schedulefree() -> None:
    """A Hydra project names the optimizer only in YAML; the Python code builds whatever it says."""
    write("requirements.txt", "schedulefree~=1.2.4\n")
    write("train.py", "import hydra\n\ndef main(cfg, model):\n    return hydra.utils.instantiate(cfg.optim, model.parameters())\n")
    assert found() == []
    write("configs/optim/default.yaml", "_target_: schedulefree.AdamWScheduleFree\nlr: 0.001\n")
    assert [code for _, code, *_ in found()] == ["SF002"]


def test_sf002_uses_every_discovered_file_even_with_diff_base_like_selection() -> None:
    write("requirements.txt", "schedulefree~=1.2.4\n")
    write("train.py", USES_SF)
    write("loop/step.py", "def step(self):\n    self.optimizer.train()\n")
    assert found("requirements.txt", "train.py", "loop") == []


def test_dependency_files_are_found_when_walking_and_respect_excludes_and_selection() -> None:
    write("requirements.txt", "schedulefree==1.2.1\n")
    write(".venv/lib/requirements.txt", "schedulefree==1.2.1\n")
    write("build/requirements.txt", "schedulefree==1.2.1\n")
    write("train.py", CALLS_TRAIN)
    assert found() == [("requirements.txt", "SF001", 1, 1, 20)]
    assert found("--select", "SF002") == []
    assert found("--ignore", "SF001") == []
    assert found("build/requirements.txt") == [("build/requirements.txt", "SF001", 1, 1, 20)]


def test_full_output_names_the_pin_and_the_fix() -> None:
    write("requirements.txt", "schedulefree==1.2.3\n")
    write("train.py", CALLS_TRAIN)
    result = lint()
    assert result.exit_code == 1
    assert "requirements.txt:1:1: SF001 [error] `schedulefree==1.2.3` admits only" in result.stdout
    assert "schedulefree>=1.2.4" in result.stdout


def test_release_tables_match_pypi_order_and_the_installed_release() -> None:
    assert list(KNOWN_RELEASES) == sorted(KNOWN_RELEASES)
    assert UNGUARDED_RELEASES < set(KNOWN_RELEASES)
    assert is_unguarded("1.2.1") and is_unguarded("1.2.0") and not is_unguarded("1.2.2")
    # the installed release is one of the guarded ones, and its source really has the guard
    assert not is_unguarded(importlib.metadata.version("schedulefree"))
    assert "except ZeroDivisionError" in inspect.getsource(schedulefree.AdamWScheduleFree.step)


# The SF001/SF002 documents show dependency files, not Python: their blocks are tested here, as
# files in a project. ```text is requirements.txt, ```toml is pyproject.toml, ```python is train.py.
BLOCK = re.compile(r"^```(text|toml|python)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FILE_NAMES = {"text": "requirements.txt", "toml": "pyproject.toml", "python": "train.py"}


def section(code: str, title: str) -> list[tuple[str, str]]:
    text = (RULES_DIR / f"{code}.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+?)[ \t]*$", text, flags=re.MULTILINE)
    blocks = BLOCK.findall(dict(zip(parts[1::2], parts[2::2]))[title])
    assert blocks, f"{code}.md: no code block in '## {title}'"
    return blocks


@pytest.mark.parametrize("code", ["SF001", "SF002", "SF003"])
@pytest.mark.parametrize("title", ["Example", "Use instead"])
def test_dependency_rule_documents(code: str, title: str, tmp_path: Path) -> None:
    for language, body in section(code, title):
        (tmp_path / FILE_NAMES[language]).write_text(body, encoding="utf-8")
    codes = [code for _, code, *_ in found("--select", "SF0")]
    assert (code in codes) == (title == "Example"), codes


DEEPSPEED_PLUGIN = """\
import schedulefree
from accelerate import Accelerator, DeepSpeedPlugin

accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(zero_stage=2))
"""
ACCELERATE_ONLY = "import schedulefree\nfrom accelerate import Accelerator\n\naccelerator = Accelerator()\n"


@pytest.mark.parametrize(
    ("pin", "fires"),
    [
        ("accelerate==1.14.0", True),
        ("accelerate<1.15", True),
        ("accelerate>=0.30,<=1.14.0", True),
        ("accelerate==1.14.*", True),
        ("accelerate~=1.10", False),  # admits 1.15 and later
        ("accelerate>=1.15", False),
        ("accelerate", False),
        ("accelerate<1.16", False),
    ],
)
def test_sf003_accelerate_pins_under_deepspeed(pin: str, fires: bool) -> None:
    write("requirements.txt", f"{pin}\nschedulefree>=1.4\n")
    write("train.py", DEEPSPEED_PLUGIN)
    assert found() == ([("requirements.txt", "SF003", 1, 1, 1 + len(pin))] if fires else [])


def test_sf003_needs_deepspeed_accelerate_and_schedulefree() -> None:
    write("requirements.txt", "accelerate==1.14.0\n")
    write("train.py", ACCELERATE_ONLY)
    assert found() == []  # no DeepSpeed anywhere
    write("requirements.txt", "accelerate==1.14.0\ndeepspeed>=0.14\n")
    result = lint("--output-format", "json")
    assert [(f["code"], f["possible"]) for f in json.loads(result.stdout)] == [("SF003", True)]  # launch config
    write("train.py", DEEPSPEED_PLUGIN.replace("import schedulefree\n", ""))
    assert found() == []  # no ScheduleFree optimizer
    write("train.py", DEEPSPEED_PLUGIN)
    assert found("--ignore", "SF003") == []
