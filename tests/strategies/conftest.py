"""A pool that fills every `PoolView` field, so each registered strategy can be exercised."""

from __future__ import annotations

import torch

from strategies import PoolView, TensorHistory
from tests.conftest import random_probs


def full_pool(pool_size: int = 300, num_classes: int = 5, seed: int = 0, num_rounds: int = 3) -> PoolView:
    """Pool ids are odd dataset indices; the labelled set is the even ones (see `labelled_ids`)."""
    generator = torch.Generator().manual_seed(seed)
    probs = random_probs(pool_size, num_classes, seed)
    logits = torch.randn(pool_size, 8, num_classes, generator=generator)
    history = torch.stack([random_probs(pool_size, num_classes, seed + 100 + t) for t in range(num_rounds)])
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.8
    return PoolView(
        pool_ids_N=2 * torch.arange(pool_size) + 1,
        probs_N_C=probs,
        mc_log_probs_N_K_C=torch.log_softmax(logits, dim=2),
        emb_N_D=torch.randn(pool_size, 6, generator=generator),
        labelled_emb_L_D=torch.randn(10, 6, generator=generator),
        history=TensorHistory(history.half(), observed),
    )


def labelled_ids(pool_size: int = 300) -> torch.Tensor:
    return 2 * torch.arange(pool_size)
