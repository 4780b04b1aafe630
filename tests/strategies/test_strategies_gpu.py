"""Every registered strategy runs on CUDA tensors and returns what it returns on the CPU (skipped without a GPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from strategies import TensorHistory, available_strategies, get_strategy
from tests.strategies.conftest import full_pool

pytestmark = pytest.mark.gpu


def to_cuda(pool):
    history = pool.history
    return dataclasses.replace(
        pool,
        pool_ids_N=pool.pool_ids_N.cuda(),
        probs_N_C=pool.probs_N_C.cuda(),
        mc_log_probs_N_K_C=pool.mc_log_probs_N_K_C.cuda(),
        emb_N_D=pool.emb_N_D.cuda(),
        labelled_emb_L_D=pool.labelled_emb_L_D.cuda(),
        history=TensorHistory(history.hist_T_N_C.cuda(), history.observed_T_N.cuda()),
    )


@pytest.mark.parametrize("name", available_strategies())
def test_same_selection_on_cuda(name):
    pool = full_pool(pool_size=2000)
    cpu = get_strategy(name)(pool, 50, generator=torch.Generator().manual_seed(0))
    gpu = get_strategy(name)(to_cuda(pool), 50, generator=torch.Generator().manual_seed(0))
    assert gpu.indices_B.device.type == "cuda"
    # the same set: float32 reductions may order near-ties differently between devices
    overlap = len(set(gpu.indices_B.cpu().tolist()) & set(cpu.indices_B.tolist()))
    assert overlap >= 48, (name, overlap)
