"""A pool that fills every `PoolView` field, so each registered strategy can be exercised."""

from __future__ import annotations

import torch

from strategies import PoolView, TensorHistory
from tests.conftest import random_probs


def dataset_split(pool_size: int, labelled_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pool_ids_N, labelled_ids_L): a random split of dataset ids 0 .. N + L - 1, the pool in random order.

    Pool and labelled ids interleave over one range (as in the loop), so pool position
    i and dataset id i are different samples and either may be labelled.
    """
    order = torch.randperm(pool_size + labelled_size, generator=torch.Generator().manual_seed(seed + 1000))
    return order[:pool_size], order[pool_size:].sort().values


def full_pool(
    pool_size: int = 300, num_classes: int = 5, seed: int = 0, num_rounds: int = 3, labelled_size: int = 10
) -> PoolView:
    """Every field filled; ``labelled_size`` may be 0 and ``pool_size`` may be 0.

    Each dataset id has one embedding, so the labelled embeddings are those of the
    labelled ids (see `labelled_ids`).
    """
    generator = torch.Generator().manual_seed(seed)
    pool_ids, labelled = dataset_split(pool_size, labelled_size, seed)
    emb_table = torch.randn(pool_size + labelled_size, 6, generator=generator)
    probs = random_probs(pool_size, num_classes, seed)
    logits = torch.randn(pool_size, 8, num_classes, generator=generator)
    history = torch.stack([random_probs(pool_size, num_classes, seed + 100 + t) for t in range(num_rounds)])
    observed = torch.rand(num_rounds, pool_size, generator=generator) < 0.8
    return PoolView(
        pool_ids_N=pool_ids,
        probs_N_C=probs,
        mc_log_probs_N_K_C=torch.log_softmax(logits, dim=2),
        emb_N_D=emb_table[pool_ids],
        labelled_emb_L_D=emb_table[labelled],
        history=TensorHistory(history.half(), observed.reshape(num_rounds, pool_size)),
    )


def labelled_ids(pool_size: int = 300, labelled_size: int = 10, seed: int = 0) -> torch.Tensor:
    return dataset_split(pool_size, labelled_size, seed)[1]
