"""alsweep's querying strategies: plain functions over tensors, importable without Hydra or MLflow.

    import torch
    from strategies import PoolView, get_strategy

    probs_N_C = torch.softmax(torch.randn(1000, 10), dim=1)
    pool = PoolView(pool_ids_N=torch.arange(1000), probs_N_C=probs_N_C)
    selection = get_strategy("entropy")(pool, 32, generator=torch.Generator().manual_seed(0))
    selection.indices_B  # 32 pool positions, most uncertain first

Each strategy module registers its functions on import; third-party packages
add more through the ``alsweep.strategies`` entry-point group.
"""

from strategies import baseline, batch_bayesian, bayesian, diversity, history, uncertainty  # noqa: F401  (registers)
from strategies.baseline import random
from strategies.bayesian import bald, mean_std, power_bald, power_entropy, softmax_bald, variation_ratio
from strategies.diversity import coreset
from strategies.errors import StrategyInputError, UnknownNameError
from strategies.history import accumulate_history, flip_rate, tod
from strategies.pool_view import NEED_FIELDS, HistoryChunk, HistoryView, PoolView, Selection, TensorHistory
from strategies.registry import (
    ENTRY_POINT_GROUP,
    StrategySpec,
    available_strategies,
    get_strategy,
    register_strategy,
)
from strategies.uncertainty import entropy, least_confidence, margin, ratio

__all__ = [
    "ENTRY_POINT_GROUP",
    "NEED_FIELDS",
    "HistoryChunk",
    "HistoryView",
    "PoolView",
    "Selection",
    "StrategyInputError",
    "StrategySpec",
    "TensorHistory",
    "UnknownNameError",
    "accumulate_history",
    "available_strategies",
    "bald",
    "coreset",
    "entropy",
    "flip_rate",
    "get_strategy",
    "least_confidence",
    "margin",
    "mean_std",
    "power_bald",
    "power_entropy",
    "random",
    "ratio",
    "register_strategy",
    "softmax_bald",
    "tod",
    "variation_ratio",
]
