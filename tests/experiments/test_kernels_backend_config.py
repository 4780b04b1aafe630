"""``kernels.backend`` from the config to the kernels: parsed, checked before training, dispatched."""

from __future__ import annotations

import pytest
import torch

from experiments.config import check_kernels_backend, parse_settings
from experiments.errors import ConfigError
from kernels import backend, bayesian, kcenter, uncertainty
from tests.experiments.test_config import _with, composer, smoke  # noqa: F401  (fixtures)


def test_the_default_is_auto(smoke):
    assert parse_settings(smoke).kernels_backend == "auto"


def test_a_bad_backend_names_the_key_and_the_choices(smoke):
    with pytest.raises(ConfigError, match=r"^kernels.backend must be one of auto, torch, cupy; got 'fast'$"):
        parse_settings(_with(smoke, kernels__backend="fast"))


def test_cupy_without_cuda_fails_before_training(smoke):
    settings = parse_settings(_with(smoke, kernels__backend="cupy"))
    with pytest.raises(ConfigError, match=r"kernels.backend=cupy needs device=cuda"):
        check_kernels_backend(settings, torch.device("cpu"))
    check_kernels_backend(parse_settings(smoke), torch.device("cpu"))  # auto: nothing to check


@pytest.mark.parametrize("kernel", ["entropy", "least_confidence", "margin", "ratio"])
def test_uncertainty_kernels_route_to_the_fused_kernel_when_the_backend_says_so(kernel, monkeypatch):
    calls = []
    monkeypatch.setattr(backend, "resolve", lambda name, tensor, choice=None, fusable=True: "cupy" if fusable else "torch")
    monkeypatch.setattr(
        uncertainty.cupy_kernels, "uncertainty_scores", lambda probs, kind: calls.append(kind) or torch.zeros(len(probs))
    )
    probs = torch.softmax(torch.randn(6, 3), dim=1)
    getattr(uncertainty, kernel)(probs)
    getattr(uncertainty, kernel)(probs.double())  # not fusable: torch
    assert calls == [kernel]


@pytest.mark.parametrize(("kernel", "index"), [("bald", 0), ("mean_std", 1), ("variation_ratio", 2)])
def test_mc_kernels_route_to_the_fused_kernel(kernel, index, monkeypatch):
    monkeypatch.setattr(backend, "resolve", lambda name, tensor, choice=None, fusable=True: "cupy" if fusable else "torch")
    outputs = tuple(torch.full((4,), float(i)) for i in range(3))
    monkeypatch.setattr(bayesian.cupy_kernels, "mc_scores", lambda log_probs: outputs)
    log_probs = torch.log_softmax(torch.randn(4, 2, 3), dim=2)
    assert torch.equal(getattr(bayesian, kernel)(log_probs), outputs[index])


def test_k_center_routes_its_picks_to_the_fused_kernel(monkeypatch):
    seen = {}
    monkeypatch.setattr(backend, "resolve", lambda name, tensor, choice=None, fusable=True: "cupy")

    def fake_picks(emb, initial, num_picks, first_pick):
        seen.update(num_picks=num_picks, first_pick=first_pick, finite=bool(torch.isfinite(initial).all()))
        return torch.arange(num_picks)

    monkeypatch.setattr(kcenter.cupy_kernels, "k_center_picks", fake_picks)
    picks, _ = kcenter.greedy_k_center(torch.randn(20, 3), torch.empty(0, 3), 4, first_pick=7)
    assert picks.tolist() == [0, 1, 2, 3] and seen == {"num_picks": 4, "first_pick": 7, "finite": True}
