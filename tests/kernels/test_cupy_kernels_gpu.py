"""Each fused CuPy kernel against its torch kernel on a GPU: same picks, scores within 1e-5 relative."""

from __future__ import annotations

import pytest
import torch

from kernels import backend, bayesian, kcenter, uncertainty

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def needs_cupy():
    if backend.cupy_or_none() is None:
        pytest.skip("CuPy with a CUDA GPU is not available")


def _close(fused: torch.Tensor, reference: torch.Tensor, rel: float = 1e-5, abs_: float = 1e-6) -> None:
    torch.testing.assert_close(fused.cpu(), reference.cpu(), rtol=rel, atol=abs_)


@pytest.mark.parametrize("kind", ["entropy", "least_confidence", "margin", "ratio"])
@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_uncertainty_scores_match_torch(kind, num_classes):
    from kernels import cupy_kernels

    generator = torch.Generator().manual_seed(num_classes)
    probs = torch.softmax(3 * torch.randn(50_000, num_classes, generator=generator), dim=1).cuda()
    probs[:7] = 1.0 / num_classes  # exact ties at the top
    fused = cupy_kernels.uncertainty_scores(probs, kind)
    reference = getattr(uncertainty, kind)(probs)
    _close(fused, reference)
    assert torch.equal(torch.topk(fused, 500).indices.sort().values, torch.topk(reference, 500).indices.sort().values)


def test_mc_scores_match_torch_and_float64_at_low_mutual_information():
    from kernels import cupy_kernels

    generator = torch.Generator().manual_seed(0)
    logits = 8 * torch.randn(20_000, 1, 10, generator=generator) + 1e-3 * torch.randn(20_000, 20, 10, generator=generator)
    log_probs = torch.log_softmax(logits.double(), dim=2)
    bald_N, mean_std_N, variation_ratio_N = cupy_kernels.mc_scores(log_probs.float().cuda())
    # float64 ground truth: the fused kernel accumulates in float64 too
    probs = log_probs.exp()
    mean = probs.mean(dim=1)
    exact_bald = -(mean * mean.clamp_min(1e-300).log()).sum(1) + (probs * log_probs).sum(2).mean(1)
    _close(bald_N, exact_bald.float(), rel=1e-3, abs_=1e-9)
    _close(mean_std_N, probs.std(dim=1, unbiased=False).mean(1).float())
    votes = torch.nn.functional.one_hot(log_probs.argmax(2), 10).sum(1)
    _close(variation_ratio_N, (1 - votes.amax(1) / 20).float())
    torch_bald = bayesian.bald(log_probs.float().cuda())
    top_fused = set(torch.topk(bald_N, 200).indices.tolist())
    top_torch = set(torch.topk(torch_bald, 200).indices.tolist())
    assert len(top_fused & top_torch) / len(top_fused | top_torch) >= 0.99


@pytest.mark.parametrize("labelled", [0, 50])
def test_k_center_picks_match_torch(labelled):
    from kernels import cupy_kernels

    generator = torch.Generator().manual_seed(labelled)
    emb = torch.randn(30_000, 64, generator=generator).cuda()
    labelled_emb = torch.randn(labelled, 64, generator=generator).cuda()
    expected, initial = kcenter.greedy_k_center(emb, labelled_emb, 100, first_pick=5)
    picks = cupy_kernels.k_center_picks(emb, initial, 100, first_pick=5 if labelled == 0 else None)
    assert picks.tolist() == expected.tolist()
