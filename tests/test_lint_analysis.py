"""Analysis edge cases (schedulers, value following), linted from source with the real engine."""

from __future__ import annotations

import textwrap

from sfdoctor.lint.checker import lint_source
from sfdoctor.lint.engine import Settings

HEADER = """\
import schedulefree
from torch.optim.lr_scheduler import CosineAnnealingLR
from transformers import get_scheduler

"""


def findings(body: str) -> list[tuple[str, int]]:
    result = lint_source("train.py", (HEADER + textwrap.dedent(body)).encode(), Settings(select=("SF1",)))
    assert not result.errors, result.errors
    return sorted((f.code, f.location.row) for f in result.findings)


def test_an_earlier_schedulefree_branch_ending_in_a_loop_is_not_an_early_exit() -> None:
    assert findings(
        """\
        def build(model, optim):
            opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
            if optim == "schedulefree":
                for p in model.parameters():
                    pass
            return CosineAnnealingLR(opt, 10)
        """
    ) == [("SF101", 10)]


def test_an_earlier_schedulefree_branch_that_returns_neutralises_the_scheduler() -> None:
    assert findings(
        """\
        def build(model, optim):
            opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
            if optim == "schedulefree":
                return opt, None
            return opt, CosineAnnealingLR(opt, 10)
        """
    ) == []


def test_get_scheduler_reads_num_warmup_steps_by_position() -> None:
    assert findings(
        """\
        opt = schedulefree.AdamWScheduleFree([], lr=1e-3)
        by_position = get_scheduler("linear", opt, 100, 1000)
        by_keyword = get_scheduler("linear", opt, num_warmup_steps=100, num_training_steps=1000)
        without_warmup = get_scheduler("linear", opt, num_training_steps=1000)
        """
    ) == [("SF101", 8), ("SF102", 6), ("SF102", 7)]


def test_a_recursive_helper_passing_a_sub_config_ends() -> None:
    source = """\
        def build(cfg, depth):
            opt = schedulefree.AdamWScheduleFree([], lr=cfg["lr"])
            if depth:
                build(cfg["child"], depth - 1)
            return opt
        """
    assert findings(source) == []


def test_a_loop_variable_rebound_in_the_body_is_not_the_loop_item() -> None:
    """`p = ...` inside `for p in ...:` reaches the lines after it, not the loop's item: the
    zeroing is then of some other tensor's gradient and SF302 offers no fix for it."""
    source = textwrap.dedent(
        """\
        import torch
        import schedulefree

        model, other = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
        optimizer.train()
        for _ in range(10):
            model(torch.randn(2, 4)).sum().backward()
            for p in model.parameters():
                p = other.weight
                p.grad.zero_()
            optimizer.step()
        """
    )
    [finding] = lint_source("train.py", source.encode(), Settings()).findings
    assert (finding.code, finding.location.row, finding.fix) == ("SF302", 11, None)
    unbound = source.replace("        p = other.weight\n", "")
    [finding] = lint_source("train.py", unbound.encode(), Settings()).findings
    assert finding.fix is not None


def modes_and_wrappers(source: str) -> list[tuple[str, int]]:
    result = lint_source("train.py", textwrap.dedent(source).encode(), Settings(select=("SF2", "SF405")))
    assert not result.errors, result.errors
    return sorted((f.code, f.location.row) for f in result.findings)


WRAPPED_ADAMW = """\
    import schedulefree
    import torch

    def test_wrapper(weight):
        optimizer = schedulefree.ScheduleFreeWrapperReference(torch.optim.AdamW([weight], lr=0.1))
        {fill}
        optimizer.train()
        optimizer.step()
    """


def test_sf405_is_silent_when_the_code_creates_the_base_state_before_the_first_step() -> None:
    fill = 'optimizer.base.state[weight]["exp_avg"] = torch.zeros_like(weight)'
    assert modes_and_wrappers(WRAPPED_ADAMW.format(fill="pass")) == [("SF405", 5)]
    assert modes_and_wrappers(WRAPPED_ADAMW.format(fill=fill)) == []


def test_a_local_function_named_like_a_mode_switch_is_walked_not_guessed() -> None:
    """`opt_train()` defined here switches only the optimizer it names (schedulefree's own tests)."""
    source = """\
        from schedulefree import AdamWScheduleFree

        def test(weight, other):
            optimizer = AdamWScheduleFree([weight], lr=0.1)
            second = AdamWScheduleFree([other], lr=0.1)

            def opt_train():
                optimizer.train()

            def opt_eval():
                optimizer.eval()

            for _ in range(10):
                opt_train()
                second.train()
                optimizer.step()
                second.step()
                opt_eval()
                second.eval()
        """
    assert modes_and_wrappers(source) == []


CORRELATED = """\
    import schedulefree

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.1)

        def validate(self, step):
            should_validate = step % 100 == 0
            if should_validate:
                self.optimizer.eval()
            try:
                self.run_validation(step)
            except RuntimeError:
                pass
            {between}
            if should_validate:
                self.optimizer.train()

        def fit(self, batches):
            self.optimizer.train()
            for step, batch in enumerate(batches):
                self.model(batch).sum().backward()
                self.optimizer.step()
                self.validate(step)
    """


def test_two_ifs_on_the_same_test_take_the_same_branch() -> None:
    """eval() under `if should_validate:` is undone by train() under the same test, not merely maybe."""
    assert modes_and_wrappers(CORRELATED.format(between="pass")) == []
    # once the test's name is assigned in between, the two ifs may disagree
    assert modes_and_wrappers(CORRELATED.format(between="should_validate = False")) == [("SF201", 24)]


def test_a_resume_state_saved_in_train_mode_is_not_a_checkpoint_of_the_weights() -> None:
    """accelerate's save_state keeps y with the optimizer in train mode: loading it resumes exactly."""
    source = """\
        import schedulefree

        def fit(model, accelerator, batches):
            optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.1)
            optimizer.train()
            for step, batch in enumerate(batches):
                model(batch).sum().backward()
                optimizer.step()
                accelerator.save_state(f"state-{step}")
                accelerator.save_model(model, f"model-{step}")
        """
    assert modes_and_wrappers(source) == [("SF203", 10)]
