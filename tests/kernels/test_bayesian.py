"""BALD kernel against a float64 reference and hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import bayesian
from kernels.bayesian import bald
from tests.kernels import references


def test_matches_float64_reference_on_random_input():
    generator = torch.Generator().manual_seed(0)
    mc_log_probs = torch.log_softmax(3 * torch.randn(2000, 12, 6, generator=generator), dim=2)
    got = bald(mc_log_probs, chunk_size=333)
    torch.testing.assert_close(got.double(), references.bald(mc_log_probs).clamp(min=0), atol=3e-6, rtol=1e-4)


def test_agreeing_samples_have_zero_information_and_disagreeing_ones_log_c():
    agree = torch.log_softmax(torch.randn(1, 1, 4).expand(1, 8, 4), dim=2)
    # K one-hot predictions spread evenly over C classes: H(mean) = log C, mean H = 0
    one_hot = torch.eye(4).repeat(2, 1).unsqueeze(0)  # [1, 8, 4]
    disagree = one_hot.clamp(min=1e-30).log()
    torch.testing.assert_close(bald(agree), torch.zeros(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(bald(disagree), torch.tensor([math.log(4)]), atol=1e-5, rtol=0)


def test_minus_infinity_log_probs_are_zero_probabilities_not_nan():
    log_probs = torch.tensor([[[0.0, -math.inf], [-math.inf, 0.0]]])  # two confident, opposite samples
    torch.testing.assert_close(bald(log_probs), torch.tensor([math.log(2)]))


def confident_mc_log_probs(pool_size: int, seed: int, spread: float = 6e-3) -> torch.Tensor:
    """A confident network late in a run: K samples that barely disagree, so I(y; w) ~ 1e-6."""
    generator = torch.Generator().manual_seed(seed)
    base_N_1_C = 4 * torch.randn(pool_size, 1, 10, generator=generator, dtype=torch.float64)
    # per-sample spread varies over the pool, so the top-B is decided by the MI, not by ties
    scale_N_1_1 = spread * torch.rand(pool_size, 1, 1, generator=generator, dtype=torch.float64)
    noise_N_K_C = scale_N_1_1 * torch.randn(pool_size, 20, 10, generator=generator, dtype=torch.float64)
    return torch.log_softmax(base_N_1_C + noise_N_K_C, dim=2).float()


def test_top_b_matches_float64_at_low_mutual_information():
    # the entropy-difference form shared about a third of its top-1000 with float64 here
    mc_log_probs = confident_mc_log_probs(20_000, seed=0)
    expected = references.bald(mc_log_probs)
    assert 1e-7 < float(expected.median()) < 1e-5  # the regime of the defect
    top_expected = set(torch.topk(expected, 1000).indices.tolist())
    top_got = set(torch.topk(bald(mc_log_probs), 1000).indices.tolist())
    jaccard = len(top_expected & top_got) / len(top_expected | top_got)
    assert jaccard >= 0.99, jaccard
    torch.testing.assert_close(bald(mc_log_probs).double(), expected, atol=1e-9, rtol=1e-3)


@pytest.mark.parametrize("name", ["predictive_entropy", "mean_std", "variation_ratio"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_new_scores_match_float64_reference(name, dtype):
    generator = torch.Generator().manual_seed(4)
    mc_log_probs = torch.log_softmax(2 * torch.randn(1500, 9, 6, generator=generator), dim=2).to(dtype)
    got = getattr(bayesian, name)(mc_log_probs, chunk_size=211)
    assert got.dtype == torch.float32 and got.shape == (1500,)
    torch.testing.assert_close(got.double(), references.BAYESIAN[name](mc_log_probs), atol=2e-6, rtol=1e-5)


def test_new_scores_hand_made():
    # sample 0: all K agree on a one-hot -> 0 everywhere; sample 1: two classes, half the votes each
    agree = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    split = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).repeat(2, 1)
    log_probs = torch.stack([agree, split]).clamp(min=1e-30).log()
    torch.testing.assert_close(bayesian.variation_ratio(log_probs), torch.tensor([0.0, 0.5]))
    # per class std over K of {1, 0, 1, 0} is 0.5 for the two split classes, 0 for the third
    torch.testing.assert_close(bayesian.mean_std(log_probs), torch.tensor([0.0, 1.0 / 3.0]))
    torch.testing.assert_close(bayesian.predictive_entropy(log_probs), torch.tensor([0.0, math.log(2)]))


def test_new_scores_are_finite_with_zero_probabilities():
    log_probs = torch.tensor([[[0.0, -math.inf], [-math.inf, 0.0]]])
    for name in ("predictive_entropy", "mean_std", "variation_ratio", "bald"):
        assert torch.isfinite(getattr(bayesian, name)(log_probs)).all(), name
