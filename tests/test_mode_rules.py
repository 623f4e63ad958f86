"""SF2xx and SF401-SF404: the exact findings for every fixture in fixtures/modes (through the real CLI),
and targeted checks of the mode flow analysis on small real programs."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner

from sfdoctor.cli import cli
from sfdoctor.lint.analysis.modes import mode_analysis
from sfdoctor.lint.checker import lint_source
from sfdoctor.lint.engine import Settings
from sfdoctor.lint.rule import FileContext

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "modes"

# (code, row, possible) for every fixture; files not listed here must be clean.
EXPECTED: dict[str, list[tuple[str, int, bool]]] = {
    "sf201_accelerate_branch.py": [("SF201", 20, True)],  # train() only under `if use_compile:`
    # pytorch_optimizer look-alike: the mode rules apply, the lr rules (its LambdaLR) do not
    "sf201_lookalike_silent_step.py": [("SF201", 17, False)],
    "sf201_script_upgraded.py": [("SF201", 18, False)],
    "sf201_split_functions.py": [("SF201", 17, False)],  # evaluate() leaves eval mode for the next epoch
    "sf201_trainer_class.py": [("SF201", 24, False)],  # the loop's back edge
    "sf202_script_validation.py": [("SF202", 19, False), ("SF203", 23, False)],
    "sf202_lookalike_prodigy.py": [("SF202", 16, False), ("SF203", 19, False)],
    "sf202_split_functions.py": [("SF202", 18, False), ("SF203", 28, False)],
    "sf202_trainer_class.py": [("SF203", 28, False), ("SF202", 31, False)],
    "sf204_script.py": [("SF204", 15, False)],
    "sf204_split_functions.py": [("SF204", 10, False)],
    "sf204_trainer_class.py": [("SF204", 19, False)],
    "sf205_script_closure_modes.py": [("SF205", 13, False), ("SF205", 24, False)],
    "sf205_split_functions.py": [("SF205", 8, False)],
    "sf205_trainer_class.py": [("SF205", 20, False)],
    "sf206_script_resume.py": [("SF206", 16, False)],
    "sf206_split_functions.py": [("SF206", 10, False)],
    "sf206_trainer_class.py": [("SF206", 18, False)],
    "sf207_script_resnet.py": [("SF207", 20, False)],
    "sf207_split_functions.py": [("SF207", 23, False)],
    "sf207_trainer_class.py": [("SF207", 38, False)],
    "sf208_script.py": [("SF208", 19, False), ("SF208", 22, False)],
    "sf208_split_functions.py": [("SF208", 16, False)],
    "sf208_trainer_class.py": [("SF208", 23, False)],
    "sf209_script_swa_ema.py": [("SF209", 19, False)],
    "sf209_model_ema_step.py": [("SF209", 19, False)],  # `self.model.ema.step(...)`: named for its averaging
    "sf209_step_hook.py": [("SF209", 10, False)],  # a step post-hook always runs in train mode
    "sf209_trainer_class.py": [("SF209", 20, False)],  # train_step() called from fit()'s train-mode loop
    "sf401_hf_cosine.py": [("SF401", 10, False)],
    # the default save_strategy="steps" with no evaluation: SF406 too; warmup_steps=500 on "linear": SF102
    "sf401_hf_default_scheduler.py": [("SF401", 13, False), ("SF406", 13, False), ("SF102", 17, False)],
    "sf401_trl_config.py": [("SF406", 12, False), ("SF401", 15, False)],
    "sf402_hf_unknown_optim.py": [("SF402", 9, False), ("SF406", 14, True), ("SF402", 15, True), ("SF402", 22, False)],
    "sf403_deepspeed_script.py": [("SF403", 10, False)],
    "sf403_split_functions.py": [("SF403", 16, False)],
    "sf403_trainer_class.py": [("SF403", 12, False)],
    "sf404_lightning_epoch_only.py": [("SF404", 7, False)],
    # no optimizer.train() anywhere: Lightning's first step raises (SF201) as well
    "sf404_lightning_list_return.py": [("SF201", 12, False), ("SF404", 12, False)],
    "sf404_lightning_no_hooks.py": [("SF201", 9, False), ("SF404", 9, False)],
    "sf406_custom_optimizer.py": [("SF406", 11, False)],  # save_steps=250, eval_steps=100
    "sf406_hf_save_steps.py": [("SF406", 10, False), ("SF406", 15, False), ("SF406", 16, False)],
}
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.py"))


def cli_findings(*args: str | Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["lint", "--output-format", "json", *map(str, args)])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def findings(source: str) -> list[tuple[str, int, bool]]:
    result = lint_source("snippet.py", textwrap.dedent(source).encode(), Settings())
    assert not result.errors, result.errors
    return [(f.code, f.location.row, f.possible) for f in result.findings]


def messages(source: str, code: str) -> list[str]:
    result = lint_source("snippet.py", textwrap.dedent(source).encode(), Settings())
    return [f.message for f in result.findings if f.code == code]


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_findings(name: str) -> None:
    found = [(f["code"], f["location"]["row"], f["possible"]) for f in cli_findings(FIXTURES / name)]
    assert found == EXPECTED.get(name, []), name


def test_every_rule_has_three_positive_and_three_negative_fixtures() -> None:
    assert set(EXPECTED) <= set(FIXTURE_FILES)
    codes = {code for rows in EXPECTED.values() for code, _, _ in rows} - {"SF102"}  # SF102's own fixtures are in lint/
    assert codes == {f"SF20{n}" for n in range(1, 10)} | {f"SF40{n}" for n in (1, 2, 3, 4, 6)}
    for code in codes:
        files = [name for name, rows in EXPECTED.items() if any(c == code for c, _, _ in rows)]
        assert len(files) >= 3 or sum(c == code for c, _, _ in EXPECTED[files[0]]) >= 3, code
    clean = [name for name in FIXTURE_FILES if name not in EXPECTED]
    assert len(clean) >= 10, clean


def test_whole_folder_matches_the_table() -> None:
    found = cli_findings(FIXTURES)
    assert len(found) == sum(len(rows) for rows in EXPECTED.values())


# -- the flow analysis ------------------------------------------------------------------------------

PRELUDE = """\
import torch
import schedulefree

model = torch.nn.Linear(4, 2)
optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
batches = [torch.randn(8, 4) for _ in range(4)]
"""


def test_loop_back_edge_reaches_the_step() -> None:
    source = PRELUDE + textwrap.dedent("""\
        optimizer.train()
        for epoch in range(3):
            for x in batches:
                model(x).sum().backward()
                optimizer.step()
            optimizer.eval()
        """)
    assert findings(source) == [("SF201", 11, False)]
    assert "through the loop" in messages(source, "SF201")[0]
    moved = source.replace("optimizer.train()\nfor epoch in range(3):\n", "for epoch in range(3):\n    optimizer.train()\n")
    assert findings(moved) == []


def test_mode_set_on_one_branch_is_possible() -> None:
    one_branch = PRELUDE + textwrap.dedent("""\
        if torch.cuda.is_available():
            optimizer.train()
        for x in batches:
            model(x).sum().backward()
            optimizer.step()
        """)
    assert findings(one_branch) == [("SF201", 11, True)]
    both = one_branch.replace("    optimizer.train()\n", "    optimizer.train()\nelse:\n    optimizer.train()\n")
    assert findings(both) == []


def test_schedulefree_guard_is_taken_for_a_schedulefree_optimizer() -> None:
    guarded = PRELUDE + textwrap.dedent("""\
        if hasattr(optimizer, "train"):
            optimizer.train()
        for x in batches:
            model(x).sum().backward()
            optimizer.step()
        """)
    assert findings(guarded) == []


def test_helper_that_switches_to_eval_lets_the_caller_save() -> None:
    source = PRELUDE + textwrap.dedent("""\
        def test(model, optimizer):
            model.eval()
            optimizer.eval()
            with torch.no_grad():
                return sum(model(x).sum().item() for x in batches)

        def main():
            optimizer.train()
            for x in batches:
                model(x).sum().backward()
                optimizer.step()
            test(model, optimizer)
            torch.save(model.state_dict(), "model.pt")

        main()
        """)
    assert findings(source) == []
    forgetting = source.replace("    optimizer.eval()\n", "")
    # the evaluation inside test() and the save after it, both at y
    assert findings(forgetting) == [("SF202", 8, False), ("SF203", 18, False)]


def test_early_return_that_skips_train_makes_the_next_step_possible() -> None:
    source = PRELUDE + textwrap.dedent("""\
        def validate(optimizer, loader):
            optimizer.eval()
            if loader is None:
                return None
            loss = sum(model(x).sum().item() for x in loader)
            optimizer.train()
            return loss

        optimizer.train()
        for x in batches:
            model(x).sum().backward()
            optimizer.step()
            validate(optimizer, batches)
        """)
    assert findings(source) == [("SF201", 18, True)]
    restored = source.replace("        return None\n", "        optimizer.train()\n        return None\n")
    assert findings(restored) == []


def test_try_finally_restores_train_mode() -> None:
    source = PRELUDE + textwrap.dedent("""\
        for epoch in range(2):
            optimizer.train()
            for x in batches:
                model(x).sum().backward()
                optimizer.step()
            try:
                optimizer.eval()
                torch.save(model.state_dict(), "m.pt")
            finally:
                optimizer.train()
            for x in batches:
                model(x).sum().backward()
                optimizer.step()
        """)
    assert findings(source) == []


def test_methods_share_self_optimizer_and_never_training_is_certain() -> None:
    source = """\
        import torch
        from schedulefree import AdamWScheduleFree

        class Trainer:
            def __init__(self, model):
                self.model = model
                self.optimizer = AdamWScheduleFree(model.parameters(), lr=1e-3)

            def step(self, x):
                self.model(x).sum().backward()
                self.optimizer.step()
        """
    assert findings(source) == [("SF201", 11, False)]
    assert "never calls .train()" in messages(source, "SF201")[0]


def test_optimizer_handed_to_code_elsewhere_is_not_judged() -> None:
    source = PRELUDE + textwrap.dedent("""\
        from mytraining import prepare_modes

        prepare_modes(optimizer)
        for x in batches:
            model(x).sum().backward()
            optimizer.step()
        """)
    assert findings(source) == []


def test_reference_sgd_starts_in_train_mode() -> None:
    source = PRELUDE.replace("AdamWScheduleFree", "SGDScheduleFreeReference") + textwrap.dedent("""\
        for x in batches:
            model(x).sum().backward()
            optimizer.step()
        """)
    assert findings(source) == []


def test_scaler_step_counts_as_a_step() -> None:
    source = PRELUDE + textwrap.dedent("""\
        scaler = torch.amp.GradScaler("cuda")
        for x in batches:
            scaler.scale(model(x).sum()).backward()
            scaler.step(optimizer)
            scaler.update()
        """)
    assert findings(source) == [("SF201", 10, False)]


def test_files_without_a_schedulefree_optimizer_are_not_walked() -> None:
    source = "import torch\nmodel = torch.nn.Linear(2, 2)\nopt = torch.optim.AdamW(model.parameters())\nopt.step()\n"
    context = FileContext("plain.py", cst.parse_module(source), frozenset())
    analysis = context.analysis(mode_analysis)
    assert analysis.results == {} and analysis.events == []


# -- fixes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [("sf205_script_closure_modes.py", "SF205"), ("sf401_hf_default_scheduler.py", "SF401"),
     ("sf401_hf_cosine.py", "SF401")],
)
def test_fix_removes_the_finding(tmp_path: Path, name: str, code: str) -> None:
    path = tmp_path / name
    shutil.copy(FIXTURES / name, path)
    before = path.read_text()
    result = CliRunner().invoke(cli, ["lint", "--fix", "--select", code, str(path)])
    assert result.exit_code == 0, result.output
    after = path.read_text()
    assert after != before
    compile(after, name, "exec")
    assert code not in [f["code"] for f in cli_findings(path)]
    if code == "SF401":
        assert 'lr_scheduler_type="constant"' in after
    else:
        assert "optimizer.train()" not in after and "optimizer.eval()" not in after


def test_step_func_is_the_step_of_schedulefree_plus() -> None:
    """AdamCScheduleFreePlusPaper starts in eval mode and its step_func raises there, like step()."""
    source = """\
    import torch
    from schedulefree import AdamCScheduleFreePlusPaper

    model = torch.nn.Linear(4, 1)
    optimizer = AdamCScheduleFreePlusPaper(model.parameters(), lr=1.0)
    for _ in range(3):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        optimizer.step_func(loss.item())
    """
    assert findings(source) == [("SF201", 9, False)]
    assert findings(source.replace("    for _", "    optimizer.train()\n    for _")) == []
