"""What the fixture tables do not show: which findings are *possible*, and messages that must say
the right thing for the case at hand."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sfdoctor.lint.checker import lint_source
from sfdoctor.lint.engine import Settings

ROOT = Path(__file__).resolve().parent.parent


def lint(source: str, name: str = "snippet.py") -> list:
    result = lint_source(name, textwrap.dedent(source).encode(), Settings())
    assert not result.errors, result.errors
    return result.findings


def rows(source: str) -> list[tuple[str, int, bool]]:
    return [(f.code, f.location.row, f.possible) for f in lint(source)]


def fixture_rows(path: str) -> list[tuple[str, int, bool]]:
    return rows((ROOT / path).read_text(encoding="utf-8"))


def test_low_precision_dtype_from_a_flag_is_possible() -> None:
    assert fixture_rows("fixtures/lint/bad_half_model.py") == [("SF115", 18, False), ("SF115", 22, True)]


def test_fraction_passed_raw_is_possible() -> None:
    assert fixture_rows("fixtures/lint/bad_warmup_fraction_passed_raw.py") == [("SF112", 22, True)]


TRAINER = """\
from transformers import TrainingArguments

args = TrainingArguments("out", optim={optim!r}, lr_scheduler_type={scheduler!r}, warmup_steps={warmup},
                         save_strategy="no")
"""


def trainer_messages(optim: str, scheduler: str, warmup: object, code: str) -> list[str]:
    found = lint(TRAINER.format(optim=optim, scheduler=scheduler, warmup=warmup))
    return [f.message for f in found if f.code == code]


def test_sf401_says_what_each_schedule_does() -> None:
    [radam] = trainer_messages("schedule_free_radam", "linear", 100, "SF401")
    assert "decays lr to 0" in radam and "double warm-up" not in radam  # RAdam gets no warmup_steps
    [adamw] = trainer_messages("schedule_free_adamw", "linear", 100, "SF401")
    assert "double warm-up" in adamw
    [ramp] = trainer_messages("schedule_free_sgd", "constant_with_warmup", 100, "SF401")
    assert "warm-up ramp from lr 0" in ramp and "decay" not in ramp
    [no_warmup] = trainer_messages("schedule_free_adamw", "cosine", 0, "SF401")
    assert "double warm-up" not in no_warmup


def test_trainer_warmup_schedule_starts_at_zero() -> None:
    assert len(trainer_messages("schedule_free_adamw", "linear", 100, "SF102")) == 1
    assert len(trainer_messages("schedule_free_radam", "constant_with_warmup", 0.1, "SF102")) == 1
    assert trainer_messages("schedule_free_adamw", "linear", 0, "SF102") == []
    assert trainer_messages("schedule_free_adamw", "reduce_lr_on_plateau", 100, "SF102") == []
    assert trainer_messages("schedule_free_adamw", "constant", 100, "SF102") == []


def test_sf113_says_what_each_class_does_and_names_the_optimizer_a_config_reaches() -> None:
    [sgd] = lint("import schedulefree\nopt = schedulefree.SGDScheduleFree([], lr=1.0, momentum=0)\n")
    assert "constructor raises ValueError" in sgd.message and "eval()" not in sgd.message
    [adamw] = lint(
        "import schedulefree\nimport torch\n"
        "CONFIG = {'lr': 1e-3, 'betas': (0.0, 0.999)}\n"
        "critic = torch.optim.Adam([], **CONFIG)\n"
        "actor = schedulefree.AdamWScheduleFree([], lr=CONFIG['lr'], betas=CONFIG['betas'])\n"
    )
    assert (adamw.code, adamw.location.row) == ("SF113", 3)
    assert "AdamWScheduleFree accepts it, but optimizer.eval() divides by it" in adamw.message
    assert [(r.message, r.location.row) for r in adamw.related] == [("reaches AdamWScheduleFree here", 5)]


def test_sf113_inline_betas_have_no_related_location() -> None:
    [finding] = lint("import schedulefree\nopt = schedulefree.AdamWScheduleFree([], lr=1e-3, betas=(0, 0.9))\n")
    assert finding.related == ()


def test_lambda_with_an_unknown_warmup_starts_at_zero() -> None:
    source = """\
    import schedulefree
    from torch.optim.lr_scheduler import LambdaLR

    def build(model, warmup):
        opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
        return LambdaLR(opt, lambda step: {body})
    """
    assert [f.code for f in lint(source.format(body="min(1.0, step / warmup)"))] == ["SF102"]
    assert [f.code for f in lint(source.format(body="step * (1 / warmup)"))] == ["SF102"]
    assert [f.code for f in lint(source.format(body="min(1.0, (step + 1) / warmup)"))] == ["SF101"]


def test_sf201_says_whether_the_step_raises() -> None:
    lookalike = fixture_rows("fixtures/modes/sf201_lookalike_silent_step.py")
    assert lookalike == [("SF201", 17, False)]
    [message] = [f.message for f in lint((ROOT / "fixtures/modes/sf201_lookalike_silent_step.py").read_text())]
    assert "does not check the mode" in message and "raises" not in message
    source = (ROOT / "fixtures/modes/sf201_lookalike_silent_step.py").read_text()
    source = source.replace("from pytorch_optimizer import ScheduleFreeAdamW", "from schedulefree import AdamWScheduleFree")
    messages = {f.code: f.message for f in lint(source.replace("ScheduleFreeAdamW(", "AdamWScheduleFree("))}
    assert 'raises "Optimizer was not in train mode"' in messages["SF201"]
    assert "SF102" in messages  # the lr rules do apply to schedulefree's own class


def test_sf115_leaves_fp32_adapters_on_a_bf16_base_alone() -> None:
    source = """\
    import schedulefree
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
    {adapter}
    optimizer = schedulefree.AdamWScheduleFree([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    """
    assert [f.code for f in lint(source.format(adapter="pass"))] == ["SF115"]
    assert lint(source.format(adapter="model.add_adapter(LoraConfig(r=8))")) == []
