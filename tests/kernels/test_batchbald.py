"""BatchBALD kernel against float64 references (exact enumeration, redux's sampled estimator) and known answers."""

from __future__ import annotations

import math

import pytest
import torch

from kernels.batchbald import JointConfigurations, batchbald, conditional_entropies
from tests.kernels import references


def random_log_probs(pool_size: int, num_samples_K: int, num_classes: int, seed: int, spread: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(spread * torch.randn(pool_size, num_samples_K, num_classes, generator=generator), dim=2)


def new_joint(num_samples_K: int, num_classes: int, num_configurations: int, max_exact: int, seed: int) -> JointConfigurations:
    generator = torch.Generator().manual_seed(seed)
    return JointConfigurations(num_samples_K, num_classes, num_configurations, max_exact, generator, torch.device("cpu"))


def test_conditional_entropies_match_float64():
    log_probs = random_log_probs(500, 7, 4, seed=0)
    expected = references.conditional_entropies(log_probs)
    torch.testing.assert_close(conditional_entropies(log_probs, chunk_size=77).double(), expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_exact_picks_and_scores_match_the_float64_definition(seed):
    # C^(b-1) = 3^5 = 243 <= M: exact enumeration all the way, so the picks must be redux's exactly
    log_probs = random_log_probs(14, 6, 3, seed=seed)
    indices_B, information_B, bald_N = batchbald(log_probs, 6, num_samples=1000, generator=torch.Generator())
    expected_picks, expected_scores = references.batchbald_exact(log_probs, 6)
    assert indices_B.tolist() == expected_picks
    expected_information = torch.tensor(expected_scores, dtype=torch.float64)
    torch.testing.assert_close(information_B.double(), expected_information, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(bald_N.double(), references.bald(log_probs), atol=2e-6, rtol=1e-5)


def test_picks_do_not_depend_on_the_block_size():
    log_probs = random_log_probs(60, 5, 4, seed=3)
    picks = [
        batchbald(log_probs, 8, num_samples=300, generator=torch.Generator().manual_seed(1), block_elements=budget)[0]
        for budget in (7, 1000, 2**20)
    ]
    assert torch.equal(picks[0], picks[1]) and torch.equal(picks[0], picks[2])


def test_a_duplicate_of_a_pick_adds_no_information_so_it_is_not_picked_again():
    # BALD would take both copies of the most informative sample; BatchBALD takes the other one
    informative = torch.eye(4).repeat(2, 1).clamp(min=1e-30).log()  # [8, 4]: samples disagree completely
    weaker = torch.log_softmax(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    log_probs = torch.stack([informative, informative, weaker])
    indices_B, information_B, bald_N = batchbald(log_probs, 2, num_samples=100, generator=torch.Generator().manual_seed(0))
    assert bald_N[0] == bald_N[1] > bald_N[2] > 0
    assert indices_B.tolist() == [0, 2]
    torch.testing.assert_close(information_B[0], torch.tensor(math.log(4)), atol=1e-5, rtol=0)


def test_sampled_estimate_equals_redux_estimator_on_the_same_configurations():
    log_probs = random_log_probs(40, 6, 5, seed=4)
    chosen = [3, 17, 8, 25, 31]
    joint = new_joint(6, 5, num_configurations=600, max_exact=30, seed=2)
    for index in chosen:
        joint.add(log_probs[index])
    assert not joint.exact and joint.size == 600  # 5^3 > 30: sampled since the third variable
    got = joint.joint_entropies(log_probs, block_elements=999)
    expected = references.sampled_joint_entropies(log_probs, chosen, joint.classes_V_M)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)


def test_sampled_estimate_is_close_to_the_exact_joint_entropy():
    log_probs = random_log_probs(10, 8, 3, seed=5)
    chosen = [0, 1, 2, 3]
    joint = new_joint(8, 3, num_configurations=80_000, max_exact=1, seed=3)
    for index in chosen:
        joint.add(log_probs[index])
    estimate = joint.joint_entropies(log_probs[4:])
    exact = torch.tensor([references.exact_joint_entropy(log_probs, chosen + [i]) for i in range(4, 10)])
    # measured over 8 seeds, the estimate's standard deviation here is 0.003 nats: 0.03 is 10 of them
    torch.testing.assert_close(estimate.double(), exact.double(), atol=0.03, rtol=0)


def test_sampled_probabilities_do_not_underflow_float32():
    # 80 uncertain variables: each sampled class has p ~ 0.15, so the products are ~ e^-150
    log_probs = torch.log_softmax(torch.randn(100, 4, 10, generator=torch.Generator().manual_seed(6)), dim=2)
    joint = new_joint(4, 10, num_configurations=400, max_exact=100, seed=0)
    for index in range(80):
        joint.add(log_probs[index])
    entropies = joint.joint_entropies(log_probs[80:])
    assert torch.isfinite(entropies).all() and (joint.probs_M_K.amax(dim=1) == 1).all()
    # same configurations, float64 products: the rescaling changes nothing but the range
    p = log_probs.double().exp()
    log_joint_M_K = sum(p[v].t()[classes].log() for v, classes in zip(range(80), joint.classes_V_M))
    assert float(log_joint_M_K.max()) < -104  # would underflow float32 without the rescaling
    shifted = (log_joint_M_K - log_joint_M_K.amax(dim=1, keepdim=True)).exp()
    q_M = shifted.mean(dim=1)
    joint_N_M_C = torch.einsum("mk,nkc->nmc", shifted, p[80:]) / 4
    entropy_rest = (torch.special.entr(joint_N_M_C) / q_M[None, :, None]).sum(dim=(1, 2)) / 400
    expected = entropy_rest - log_joint_M_K.amax(dim=1).mean()
    torch.testing.assert_close(entropies.double(), expected, atol=2e-3, rtol=1e-5)


def test_sampling_follows_the_generator():
    log_probs = random_log_probs(200, 5, 10, seed=7)
    runs = [batchbald(log_probs, 10, num_samples=50, generator=torch.Generator().manual_seed(seed))[1] for seed in (0, 0, 1)]
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)
    assert not torch.equal(runs[0], runs[2])


def test_query_larger_than_the_pool_returns_every_position_once():
    log_probs = random_log_probs(7, 4, 3, seed=8)
    indices_B, _, _ = batchbald(log_probs, 50, num_samples=20, generator=torch.Generator().manual_seed(0))
    assert sorted(indices_B.tolist()) == list(range(7))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_num_samples_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 1; got"):
        batchbald(random_log_probs(5, 3, 2, seed=0), 2, num_samples=bad, generator=torch.Generator())


@pytest.mark.gpu
def test_cuda_gives_the_cpu_picks():
    # a CPU generator draws the same configurations for both devices
    log_probs = random_log_probs(500, 10, 6, seed=9)
    runs = [
        batchbald(log_probs.to(device), 8, num_samples=2_000, generator=torch.Generator().manual_seed(0))
        for device in ("cpu", "cuda")
    ]
    assert runs[1][0].cpu().tolist() == runs[0][0].tolist()
    torch.testing.assert_close(runs[1][1].cpu(), runs[0][1], atol=1e-4, rtol=1e-4)
