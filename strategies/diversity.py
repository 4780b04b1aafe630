"""Diversity strategies over embeddings ``emb_N_D`` and ``labelled_emb_L_D``."""

from __future__ import annotations

import torch

from kernels.kcenter import greedy_k_center
from strategies.pool_view import PoolView, Selection
from strategies.registry import register_strategy


@register_strategy(
    name="coreset",
    version="2.0",
    needs=("emb", "labelled_emb"),
    batch_aware=True,
    paper="Sener & Savarese 2018, arXiv:1708.00489 (k-Center-Greedy)",
)
def coreset(pool: PoolView, query_size: int, *, generator: torch.Generator) -> Selection:
    """Greedy k-center: each pick is the pool point farthest from the labelled set and earlier picks.

    ``scores_N`` is each pool point's squared distance to the labelled set
    before any pick. With nothing labelled (L = 0), the first pick is uniform at
    random and ``scores_N`` is the squared distance to it, so scores are always finite.
    Version 2.0: distances exact to float32 rounding (1.0 lost them on offset or clustered
    embeddings, so picks change), and finite scores at L = 0.
    """
    first_pick = int(torch.randint(pool.size, (1,), generator=generator, device=generator.device))
    indices_B, min_sq_dist_N = greedy_k_center(pool.emb_N_D, pool.labelled_emb_L_D, query_size, first_pick)
    return Selection(indices_B, min_sq_dist_N)
