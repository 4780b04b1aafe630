"""EPIG kernel against the paper's float64 formula and hand-made cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from kernels.epig import epig
from tests.kernels import references


def random_log_probs(pool_size: int, num_samples_K: int, num_classes: int, seed: int, spread: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(spread * torch.randn(pool_size, num_samples_K, num_classes, generator=generator), dim=2)


@pytest.mark.parametrize("block_elements", [None, 1, 97, 5000])
def test_matches_float64_reference_whatever_the_blocks(block_elements):
    pool = random_log_probs(300, 9, 5, seed=0)
    targets = random_log_probs(37, 9, 5, seed=1)
    got = epig(pool, targets, block_elements=block_elements)
    torch.testing.assert_close(got.double(), references.epig(pool, targets).clamp(min=0), atol=3e-6, rtol=1e-4)


def test_matches_float64_reference_with_ten_classes_and_twenty_samples():
    pool = random_log_probs(200, 20, 10, seed=2, spread=1.0)
    targets = pool[torch.randperm(200, generator=torch.Generator().manual_seed(0))[:50]]
    torch.testing.assert_close(epig(pool, targets).double(), references.epig(pool, targets).clamp(min=0), atol=3e-6, rtol=1e-4)


def test_a_sample_that_is_its_own_target_gains_its_whole_entropy():
    # K one-hot predictions spread evenly over C classes: knowing y fixes y* = y, so I(y; y*) = H(y) = log C
    one_hot = torch.eye(4).repeat(2, 1).clamp(min=1e-30).log()[None]  # [1, 8, 4]
    torch.testing.assert_close(epig(one_hot, one_hot), torch.tensor([math.log(4)]), atol=1e-5, rtol=0)


def test_targets_without_epistemic_uncertainty_give_zero():
    pool = random_log_probs(50, 6, 3, seed=3)
    agreeing_targets = torch.log_softmax(torch.randn(10, 1, 3), dim=2).expand(10, 6, 3)
    torch.testing.assert_close(epig(pool, agreeing_targets), torch.zeros(50), atol=2e-6, rtol=0)


def test_minus_infinity_log_probs_are_zero_probabilities_not_nan():
    log_probs = torch.tensor([[[0.0, -math.inf], [-math.inf, 0.0]]])  # two confident, opposite samples
    torch.testing.assert_close(epig(log_probs, log_probs), torch.tensor([math.log(2)]))


def test_targets_must_share_k_and_c_with_the_pool():
    with pytest.raises(ValueError, match=r"target_mc_log_probs_Nt_K_C must have shape \(Nt, K=4, C=3\); got \(5, 4, 2\)"):
        epig(random_log_probs(6, 4, 3, seed=0), random_log_probs(5, 4, 2, seed=1))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    pool, targets = random_log_probs(3000, 16, 10, seed=4), random_log_probs(100, 16, 10, seed=5)
    torch.testing.assert_close(epig(pool.cuda(), targets.cuda()).cpu(), epig(pool, targets), atol=1e-5, rtol=1e-4)
