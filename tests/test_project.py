"""Whole-project lint: the exact findings for the multi-file fixture projects (through the real CLI),
and the project view's module resolution."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfdoctor.cli import cli
from sfdoctor.lint.project.view import ProjectView, module_names

PROJECTS = Path(__file__).resolve().parent.parent / "fixtures" / "projects"

# (file, code, row, possible) for every project; files not listed must be clean.
EXPECTED: dict[str, list[tuple[str, str, int, bool]]] = {
    # get_optimizer() in library/train_util.py returns (name, args, optimizer) and calls train();
    # fine_tune.py samples and saves through train_util helpers without eval(); train_network.py
    # switches through optimizer_eval_fn()/optimizer_train_fn() and stays silent.
    "factory_tuple": [
        ("fine_tune.py", "SF202", 17, True),
        ("fine_tune.py", "SF203", 18, True),
        ("fine_tune.py", "SF203", 19, True),  # a helper named for saving, whose write goes through a callback
    ],
    # a factory re-exported by the package's __init__.py (src/ layout); a dict result read by key
    # through a relative import; train_ok.py calls train() and eval().
    "src_reexport": [
        ("src/trainkit/loop.py", "SF202", 15, False),
        ("train.py", "SF201", 11, False),
    ],
    # a class picked from a dict by a CLI flag: possible; train_ok.py gates its mode calls on a flag.
    "class_registry": [("train.py", "SF203", 21, True)],
    # a registry filled by a decorator (`@register("sf_adamw")` on a ScheduleFree subclass) and read by
    # a config key in a factory: possible; train_ok.py switches modes and is silent.
    "decorator_registry": [("train.py", "SF203", 13, True)],
    # the EMA reaches the library's training step as a parameter annotated `ExponentialMovingAverage`;
    # the step that updates it between eval() and train() is silent.
    "ema_parameter": [("lib/steps.py", "SF209", 11, False)],
    # config.warmup_steps, which create_lr_scheduler() reads as a fraction when trainer.py hands it over,
    # goes raw to AdamWScheduleFree(warmup_steps=...); config.sf_warmup_steps is never read as one.
    "fraction_setting": [("modules/create.py", "SF112", 8, True)],
    # evidence from use: configure_optimizers builds from a config, the subclasses switch `self.optimizers()`;
    # one switches back to train only per epoch (possible SF404), one per batch; one never switches (silent).
    "lightning_evidence": [("models/switched_per_epoch.py", "SF404", 5, True)],
    # a save helper in another module; the helper that switches to eval itself is silent, and so is
    # utils.monitoring.log_lr(optimizer): a project function that leaves the mode alone.
    "helper_module": [("train.py", "SF203", 18, False)],
    # the optimizer built by a flag-driven factory and handed to get_swa() of another module, which
    # builds SWALR on it; the scheduler wrapper that returns early for ScheduleFree stays silent.
    "handed_optimizer": [("tools/scripts_utils.py", "SF101", 16, True)],
    # self.optimizer set by a base class in another module; CheckedTrainer calls train() and is silent.
    "inherited_optimizer": [("trainer.py", "SF201", 12, False)],
    # an optimizer built elsewhere and switched behind an `is_schedule_free` flag: validation without
    # eval() is a possible finding; __sample switches and stays silent.
    "evidence_from_use": [("modules/trainer.py", "SF202", 27, True)],
    # instantiate(cfg.optimizer) where a Hydra config names schedulefree.AdamWScheduleFree: possible.
    "hydra_config": [("train.py", "SF201", 12, True)],
    # configure_optimizers returning AdamWScheduleFree in models/base.py's LightningModule; models/sf.py's
    # subclass switches only at epoch start; WideModule inherits SwitchingModule's hooks and is silent, and
    # neither base class is reported for its subclasses' sake.
    "lightning_inherited": [("models/sf.py", "SF404", 4, False)],
    # a subclass overriding configure_optimizers to return SGDScheduleFree, no hooks and no train() in it or
    # its base; the subclass that keeps the base's AdamW is silent.
    "lightning_override": [("models/schedule_free.py", "SF201", 6, False), ("models/schedule_free.py", "SF404", 6, False)],
}


def project_findings(name: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int, bool]]:
    monkeypatch.chdir(PROJECTS / name)
    result = CliRunner().invoke(cli, ["lint", "--isolated", "--no-cache", "--output-format", "json", "."])
    assert result.exit_code in (0, 1), result.output
    return sorted((f["filename"], f["code"], f["location"]["row"], f["possible"]) for f in json.loads(result.stdout))


@pytest.mark.parametrize("name", sorted(p.name for p in PROJECTS.iterdir() if p.is_dir()))
def test_project_findings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert project_findings(name, monkeypatch) == sorted(EXPECTED[name])


def test_each_file_alone_misses_what_the_project_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The findings come from the other modules: linted alone, fine_tune.py has nothing to report."""
    monkeypatch.chdir(PROJECTS / "factory_tuple")
    result = CliRunner().invoke(cli, ["lint", "--isolated", "--no-cache", "--output-format", "json", "fine_tune.py"])
    assert json.loads(result.stdout) == []


def test_the_help_names_the_flag_and_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECTS / "factory_tuple")
    result = CliRunner().invoke(cli, ["lint", "--isolated", "--no-cache", "--output-format", "json", "."])
    save = next(f for f in json.loads(result.stdout) if f["code"] == "SF203")
    assert "library/train_util.py:" in " ".join(save["notes"])
    assert 'optimizer_type.endswith("schedulefree")' in " ".join(save["notes"])
    assert {"filename": "library/train_util.py", "message": "saved here"}.items() <= save["related"][0].items()
    assert save["related"][0]["location"]["row"] == 29


def test_module_names_follow_packages_and_src_layouts(tmp_path: Path) -> None:
    for name in ("src/pkg/__init__.py", "src/pkg/sub/__init__.py", "src/pkg/sub/mod.py", "scripts/run.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    files = [(tmp_path / n, n) for n in ("src/pkg/__init__.py", "src/pkg/sub/mod.py", "scripts/run.py")]
    names = module_names(files)
    assert names == {"src/pkg/__init__.py": "pkg", "src/pkg/sub/mod.py": "pkg.sub.mod", "scripts/run.py": "run"}
    view = ProjectView(names)
    assert view.absolute("src/pkg/sub/mod.py", ".helpers.f") == "pkg.sub.helpers.f"
    assert view.absolute("src/pkg/sub/mod.py", "..util") == "pkg.util"
    assert view.absolute("src/pkg/__init__.py", ".optim.make") == "pkg.optim.make"
    assert view.module_file("scripts/run.py", "pkg.sub.mod.train") == "src/pkg/sub/mod.py"
    assert view.module_file("scripts/run.py", "torch.optim") is None


def test_configured_factories_may_return_the_optimizer_inside_a_tuple(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`optimizer-factories` names library factories; "[2]" picks the tuple element that is the optimizer."""
    monkeypatch.chdir(tmp_path)
    Path("train.py").write_text(
        "import torch\n"
        "from trainlib.util import get_optimizer, get_scheduler_and_optimizer\n\n"
        "model = torch.nn.Linear(4, 1)\n"
        "name, args, optimizer = get_optimizer(model.parameters())\n"
        "for _ in range(10):\n"
        "    model(torch.randn(2, 4)).sum().backward()\n"
        "    optimizer.step()\n"
        "other, scheduler = get_scheduler_and_optimizer(model.parameters())\n"
        "other.step()\n"
    )
    Path("pyproject.toml").write_text(
        '[tool.sfdoctor.lint]\noptimizer-factories = ["trainlib.util.get_optimizer[2]", "trainlib.util.get_scheduler_and_optimizer[1]"]\n'
    )
    result = CliRunner().invoke(cli, ["lint", "--output-format", "json", "."])
    # element 2 of get_optimizer() is the optimizer; element 0 of the other one is not
    assert [(f["code"], f["location"]["row"]) for f in json.loads(result.stdout)] == [("SF201", 8)]


def test_a_second_run_takes_unchanged_files_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the changed file is linted again, and the project view's digest does not depend on it."""
    from sfdoctor.lint import engine

    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "factory_tuple", project, ignore=shutil.ignore_patterns(".sfdoctor_cache"))
    monkeypatch.chdir(project)
    linted: list[str] = []
    real_run = engine.Workers.run

    def counting_run(workers: engine.Workers, jobs: list, settings: engine.Settings) -> list:
        linted.extend(job.display for job in jobs)
        return real_run(workers, jobs, settings)

    monkeypatch.setattr(engine.Workers, "run", counting_run)
    first = CliRunner().invoke(cli, ["lint", "--output-format", "json", "."])
    assert linted and (project / ".sfdoctor_cache" / "lint.pickle").is_file()
    linted.clear()
    second = CliRunner().invoke(cli, ["lint", "--output-format", "json", "."])
    assert linted == [] and second.stdout == first.stdout
    Path("train_network.py").write_text(Path("train_network.py").read_text() + "\n# changed\n")
    CliRunner().invoke(cli, ["lint", "--output-format", "json", "."])
    assert linted == ["train_network.py", "train_network.py"]  # summarised in a round, then checked by the rules
    linted.clear()
    CliRunner().invoke(cli, ["lint", "--no-cache", "--output-format", "json", "."])
    assert "fine_tune.py" in linted


def test_each_file_is_parsed_once_although_it_is_summarised_in_rounds_and_checked_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import libcst

    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "factory_tuple", project, ignore=shutil.ignore_patterns(".sfdoctor_cache"))
    monkeypatch.chdir(project)
    parsed: list[bytes] = []
    real_parse = libcst.parse_module

    def counting_parse(source: bytes) -> libcst.Module:
        parsed.append(source)
        return real_parse(source)

    monkeypatch.setattr(libcst, "parse_module", counting_parse)
    result = CliRunner().invoke(cli, ["lint", "--no-cache", "--jobs", "1", "--output-format", "json", "."])
    assert json.loads(result.stdout) and len(parsed) >= 3
    assert len(set(parsed)) == len(parsed)


def test_a_run_answered_by_the_cache_loads_neither_libcst_nor_the_rules(tmp_path: Path) -> None:
    """The editor and pre-commit loop: a warm run pays for reading and hashing, not for the parser."""
    project = tmp_path / "project"
    shutil.copytree(PROJECTS / "factory_tuple", project, ignore=shutil.ignore_patterns(".sfdoctor_cache"))
    probe = (
        "import sys\nfrom sfdoctor.cli import cli\n"
        "try:\n    cli.main(['lint', '--quiet', '.'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('libcst', 'sfdoctor.lint.checker') if m in sys.modules))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert runs[0].stdout.splitlines()[-1] == "['libcst', 'sfdoctor.lint.checker']"  # cold: it parsed
    assert runs[1].stdout.splitlines()[-1] == "[]"
