"""The safe division is the upstream guard bit for bit, and replaces the wrapper's crash and the tensor NaN."""

from __future__ import annotations

import pytest
import schedulefree
import torch

from sfdoctor.replay.child import materialize
from sfdoctor.replay.instrument import Instrumentation, ReplayStop

STEPS = 12
LR = [0.0, 0.0, 0.0] + [0.02] * (STEPS - 3)  # lr 0 on the first steps: weight_sum is 0 there


def train(make_optimizer, lrs=LR, instrumented=False) -> tuple[list[torch.Tensor], object]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    optimizer = None
    instrumentation = Instrumentation(max_steps=10_000)
    if instrumented:
        instrumentation.install()
    try:
        optimizer = make_optimizer(model.parameters())
        if hasattr(optimizer, "train"):
            optimizer.train()
        generator = torch.Generator().manual_seed(1)
        for lr in lrs:
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs = torch.randn(16, 6, generator=generator)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), inputs[:, :2]).backward()
            optimizer.step()
    finally:
        instrumentation.uninstall()
    return [p.detach().clone() for p in model.parameters()], instrumentation


GUARDED = {
    "AdamW": lambda params: schedulefree.AdamWScheduleFree(params, lr=0.0, weight_decay=0.01),
    "AdamW-for-loop": lambda params: schedulefree.AdamWScheduleFree(params, lr=0.0, foreach=False),
    "SGD": lambda params: schedulefree.SGDScheduleFree(params, lr=0.0, weight_decay=0.01),
    "RAdam": lambda params: schedulefree.RAdamScheduleFree(params, lr=0.0),
    "AdamWReference": lambda params: schedulefree.AdamWScheduleFreeReference(params, lr=0.0),
}


@pytest.mark.parametrize("name", GUARDED)
def test_instrumented_run_equals_upstream_guard(name: str) -> None:
    upstream, _ = train(GUARDED[name])
    replayed, instrumentation = train(GUARDED[name], instrumented=True)
    assert all(torch.equal(a, b) for a, b in zip(upstream, replayed))
    steps = instrumentation.optimizers[0].groups[0].steps
    assert all(s["safe_division"] and s["weight_sum"] == 0.0 for s in steps[:3])
    first_weight = next(s for s in steps if s["weight_sum"] > 0)  # RAdam: after its rectification phase
    assert first_weight["ckp1"] == 1.0 and not first_weight["safe_division"]  # w / w


def test_wrapper_gets_the_guarded_result_instead_of_zero_division() -> None:
    def make(params):
        return schedulefree.ScheduleFreeWrapper(torch.optim.SGD(params, lr=0.0), momentum=0.9)

    with pytest.raises(ZeroDivisionError):
        train(make)  # upstream: no guard in the wrapper
    initial, _ = train(make, lrs=[])
    frozen, _ = train(make, lrs=[0.0] * 3, instrumented=True)
    assert all(torch.equal(a, b) for a, b in zip(initial, frozen))  # ckp1 = 0 while y = z = x
    moved, instrumentation = train(make, instrumented=True)
    assert all(torch.isfinite(p).all() for p in moved)
    assert not all(torch.equal(a, b) for a, b in zip(initial, moved))
    steps = instrumentation.optimizers[0].groups[0].steps
    assert [s["weight_sum"] for s in steps[:3]] == [0.0] * 3 and steps[3]["weight_sum"] > 0


def test_tensor_lr_gets_the_guarded_result_instead_of_nan() -> None:
    def make(params):
        return schedulefree.AdamWScheduleFree(params, lr=torch.tensor(0.0))

    def float_lr(params):
        return schedulefree.AdamWScheduleFree(params, lr=0.0)

    zeros = [torch.tensor(0.0)] * 4
    nan_run, _ = train(make, lrs=zeros)
    assert all(torch.isnan(p).all() for p in nan_run)  # upstream: 0/0 on a tensor is NaN
    replayed, _ = train(make, lrs=zeros, instrumented=True)
    guarded, _ = train(float_lr, lrs=[0.0] * 4)
    assert all(torch.equal(a, b) for a, b in zip(guarded, replayed))


def test_stop_is_a_base_exception_raised_after_the_last_step() -> None:
    assert not issubclass(ReplayStop, Exception)
    with pytest.raises(ReplayStop):
        instrumentation = Instrumentation(max_steps=2)
        instrumentation.install()
        try:
            model = torch.nn.Linear(2, 1)
            optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)
            optimizer.train()
            for _ in range(5):
                model(torch.ones(1, 2)).sum().backward()
                optimizer.step()
        finally:
            instrumentation.uninstall()
    assert instrumentation.optimizers[0].steps == 2
    assert optimizer.param_groups[0]["k"] == 2  # the second step ran completely


def test_uninstall_restores_every_patched_class() -> None:
    originals = (torch.optim.Optimizer.__init__, torch.Tensor.backward, schedulefree.ScheduleFreeWrapper.step,
                 schedulefree.AdamWScheduleFree.eval)
    instrumentation = Instrumentation(max_steps=10)
    instrumentation.install()
    optimizer = schedulefree.AdamWScheduleFree(torch.nn.Linear(2, 1).parameters())
    torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    instrumentation.uninstall()
    assert (torch.optim.Optimizer.__init__, torch.Tensor.backward, schedulefree.ScheduleFreeWrapper.step,
            schedulefree.AdamWScheduleFree.eval) == originals
    assert "step" not in torch.optim.lr_scheduler.LambdaLR.__dict__


def test_change_norm_is_exact_for_small_tensors_and_sampled_for_large_ones() -> None:
    torch.manual_seed(0)
    small, large = torch.nn.Linear(4, 3), torch.nn.Linear(300, 100)  # 12 and 30000 weights
    instrumentation = Instrumentation(max_steps=100)
    instrumentation.install()
    try:
        optimizers = [schedulefree.SGDScheduleFree(layer.parameters(), lr=0.5) for layer in (small, large)]
        exact = []
        for layer, optimizer in zip((small, large), optimizers):
            optimizer.train()
            before = [p.detach().clone() for p in layer.parameters()]
            layer(torch.randn(8, layer.in_features)).square().sum().backward()
            optimizer.step()
            exact.append(torch.sqrt(sum((p - b).square().sum() for p, b in zip(layer.parameters(), before))))
    finally:
        instrumentation.uninstall()
    materialize([record for trace in instrumentation.optimizers for record in trace.groups[0].steps])
    small_norm, large_norm = (trace.groups[0].steps[0]["param_change_norm"] for trace in instrumentation.optimizers)
    assert small_norm == pytest.approx(exact[0].item(), rel=1e-5)
    assert large_norm == pytest.approx(exact[1].item(), rel=0.1)
    assert all(trace.groups[0].moved for trace in instrumentation.optimizers)
