"""Uncertainty kernels against float64 references and hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import uncertainty
from tests.conftest import random_probs
from tests.kernels.references import uncertainty_scores


@pytest.mark.parametrize("name", ["entropy", "least_confidence", "margin", "ratio"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference_on_random_input(name, seed):
    probs = random_probs(3000, 7, seed)
    expected = uncertainty_scores(probs)[name]
    got = getattr(uncertainty, name)(probs, chunk_size=257)  # odd chunk: covers a ragged last chunk
    assert got.dtype == torch.float32 and got.shape == (3000,)
    torch.testing.assert_close(got.double(), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["entropy", "least_confidence", "margin", "ratio"])
def test_fp16_input_is_computed_in_float32(name):
    probs = random_probs(500, 10, seed=3, dtype=torch.float16)
    expected = uncertainty_scores(probs.double())[name]
    torch.testing.assert_close(getattr(uncertainty, name)(probs).double(), expected, atol=1e-5, rtol=1e-4)


def test_hand_made_known_answers():
    probs = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.7, 0.2, 0.1, 0.0]])
    torch.testing.assert_close(uncertainty.entropy(probs), torch.tensor([0.0, math.log(4), -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))]))
    torch.testing.assert_close(uncertainty.least_confidence(probs), torch.tensor([0.0, 0.75, 0.3]))
    torch.testing.assert_close(uncertainty.margin(probs), torch.tensor([-1.0, 0.0, -0.5]))
    torch.testing.assert_close(uncertainty.ratio(probs), torch.tensor([0.0, 1.0, 0.2 / 0.7]))
    torch.testing.assert_close(uncertainty.normalised_entropy(probs)[1], torch.tensor(1.0))


def test_every_score_is_highest_for_the_uniform_row():
    probs = torch.cat([random_probs(50, 5, seed=4, sharpness=3.0), torch.full((1, 5), 0.2)])
    for name in ["entropy", "least_confidence", "margin", "ratio"]:
        assert int(getattr(uncertainty, name)(probs).argmax()) == 50, name


def test_runs_on_each_device(devices):
    for device in devices:
        scores = uncertainty.entropy(random_probs(100, 3, seed=0).to(device))
        assert scores.device.type == device
