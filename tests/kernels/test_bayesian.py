"""BALD kernel against a float64 reference and hand-made cases."""

from __future__ import annotations

import math

import torch

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
