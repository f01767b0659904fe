"""The compiled training forward (networks/compiled.py): the choice of compiling, the eager fallback when the
compiler fails, and that a compiled step computes the same loss and gradients as the plain module."""

from __future__ import annotations

import pytest
import torch
from SpineLocalizerLib.networks import compiled
from SpineLocalizerLib.networks.vnet import VNet


def test_compile_modes(monkeypatch):
    assert compiled.wants_compile("on") is True
    assert compiled.wants_compile("off") is False
    with pytest.raises(ValueError, match="compile must be one of"):
        compiled.wants_compile("fast")
    # "auto" asks for a C++ compiler on the PATH (Inductor's CPU code is C++).
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    assert compiled.wants_compile("auto") is False
    monkeypatch.setattr(compiled.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert compiled.wants_compile("auto") is True


def test_compiler_failure_falls_back_to_eager(monkeypatch):
    calls = []

    def broken_compile(net):
        def run(x):
            calls.append(x.shape)
            raise RuntimeError("InductorError: C++ compile error\nlong details")

        return run

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    torch.manual_seed(0)
    net = VNet(1, 3, 2, levels=2)
    messages: list[str] = []
    forward = compiled.TrainingForward(net, True, messages.append)
    x = torch.randn(1, 1, 8, 8, 8)
    out = forward(x)
    assert torch.equal(out, net(x))
    assert forward.mode == "eager" and len(calls) == 1
    assert len(messages) == 1 and "RuntimeError: InductorError: C++ compile error" in messages[0]
    assert "long details" not in messages[0]  # one line, not the compiler's whole output
    forward(x)
    assert len(calls) == 1  # not retried at every step


def test_not_compiling_calls_the_module():
    net = VNet(1, 3, 2, levels=2)
    forward = compiled.TrainingForward(net, False, lambda m: pytest.fail(m))
    x = torch.randn(1, 1, 8, 8, 8)
    assert forward.mode == "eager" and torch.equal(forward(x), net(x))


@pytest.mark.skipif(
    not compiled.wants_compile("auto"), reason="no C++ compiler on the PATH: torch.compile cannot run here"
)
def test_compiled_step_matches_eager():
    torch.manual_seed(0)
    net = VNet(1, 3, 2, levels=2)
    x = torch.randn(2, 1, 8, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8, 8))

    def grads(forward):
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(x), target)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in net.parameters()]

    eager_loss, eager_grads = grads(net)
    forward = compiled.TrainingForward(net, True, lambda m: pytest.fail(m))
    loss, compiled_grads = grads(forward)
    assert forward.mode == "compiled"
    assert loss == pytest.approx(eager_loss, rel=1e-5)
    for a, b in zip(eager_grads, compiled_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    # Training flips the module to eval for validation and back; the compiled call still works afterwards and
    # the parameters it reads are the module's own (one optimizer step shows in both).
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    net.eval()
    net.train()
    assert torch.allclose(forward(x), net(x), rtol=1e-4, atol=1e-5)
