"""The shipped fixtures produce exactly the expected findings (code and line, in order), through the CLI.

The expectations are the specification (RULES.md, issue 2), written from the fixtures' code, not
copied from the linter's output. `fixtures/lint/README.md` says what each fixture shows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfdoctor.cli import cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lint"

# (code, row), or (code, cell, row in the cell) in a notebook
EXPECTED: dict[str, list[tuple]] = {
    # warmup_steps, a warm-up LambdaLR (SF101 only: no 0/0 there), step(), step_func()
    "bad_adamc_step.py": [("SF116", 8), ("SF101", 10), ("SF116", 20), ("SF116", 29)],
    "bad_adamc_trainer.py": [("SF116", 10), ("SF116", 27)],  # Trainer(optimizers=...), configure_optimizers
    "bad_argparse_lambda_warmup.py": [("SF102", 38)],
    "bad_bf16_from_pretrained.py": [("SF115", 9)],
    "bad_half_model.py": [("SF115", 18), ("SF115", 22)],  # model.half(); .to("cuda", dtype) from a flag
    "bad_diffusers_text_encoder_lr0.py": [("SF301", 43), ("SF102", 48)],
    "bad_factory_dict_config.py": [("SF110", 35)],
    "bad_fractional_warmup.py": [("SF112", 23)],
    "bad_grad_zeroing_backbone.py": [("SF302", 32)],
    "bad_hf_double_warmup.py": [("SF102", 46), ("SF104", 46)],
    "bad_lambda_unknown_warmup.py": [("SF102", 13)],  # step / warmup is 0 at step 0 for any warmup
    "bad_negative_lr.py": [("SF114", 15)],
    "bad_onecycle_sgd.py": [("SF101", 31), ("SF103", 31)],
    "bad_param_group_frozen_encoder.py": [("SF301", 43)],
    "bad_radam_warmup_steps.py": [("SF112", 27)],
    "bad_sequential_warmup_cosine.py": [("SF102", 39)],
    "bad_tensor_lr_compile.py": [("SF111", 16)],
    "bad_timm_cosine_warmup.py": [("SF102", 30)],
    "bad_trainer_class_scheduler.py": [("SF110", 30), ("SF102", 35)],
    "bad_trainer_fractional_warmup.py": [("SF112", 17)],
    "bad_warmup_fraction_passed_raw.py": [("SF112", 22)],
    "bad_wrapper_around_adam.py": [("SF405", 14)],
    "bad_zero_beta1.py": [("SF113", 15)],
    "bad_notebook_warmup_scheduler.ipynb": [("SF102", 3, 10), ("SF201", 5, 7)],  # after `!pip`, under `%%time`
    "broken_notebook_export.py": [("SF110", 20)],  # `!pip install schedulefree` reads as a blank line
    "good_adamc_step_func.py": [],  # betas=(0, ...) and a betas write are harmless on ScheduleFree+
    "good_argparse_positive_lr.py": [],
    "good_autocast_fp32_params.py": [],  # autocast over fp32 parameters; a half() copy after training
    "good_dummy_scheduler.py": [],
    "good_freeze_requires_grad.py": [],
    "good_lambda_in_string_and_comment.py": [],
    "good_notebook_warmup_steps.ipynb": [],  # `warmup_steps`, modes switched; magics and a `?` help line
    "good_scheduler_on_other_branch.py": [],
    "good_scheduler_step_wrapper.py": [],
    "good_warmup_fraction_converted.py": [],
    "good_wrapper_around_sgd.py": [],
    "good_zero_init_adapter.py": [],
}


@pytest.fixture(scope="module")
def findings_by_file() -> dict[str, list[tuple]]:
    """Lint the whole fixture folder once, as a user would."""
    result = CliRunner().invoke(cli, ["lint", "--output-format", "json", str(FIXTURES)])
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    found = defaultdict(list)
    for finding in json.loads(result.stdout):
        cell = (finding["cell"],) if "cell" in finding else ()
        found[Path(finding["filename"]).name].append((finding["code"], *cell, finding["location"]["row"]))
    return found


def test_every_fixture_has_expectations() -> None:
    fixtures = [*FIXTURES.glob("*.py"), *FIXTURES.glob("*.ipynb")]
    assert sorted(path.name for path in fixtures) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(name: str, findings_by_file: dict[str, list[tuple]]) -> None:
    assert findings_by_file.get(name, []) == EXPECTED[name]
