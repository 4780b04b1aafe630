"""INFER: compute, once per round, exactly the pool inputs that are needed.

The backbone runs once over the pool; class probabilities, embeddings and
MC-dropout samples are all derived from that one pass. In the default
``mc_mode="head"`` the K dropout masks are applied to the head as one batched
op on the [n, K, D] expanded embeddings; ``mc_mode="full"`` instead runs the
whole network K times with every dropout layer active (slower, and the only
choice when dropout sits inside the backbone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from experiments.models import ALModel
from experiments.settings import InferenceSettings
from kernels.chunking import rows_fitting_free_memory
from strategies import PoolView

MC_MODES = ("head", "full")


def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``fn`` over consecutive row batches of ``x``, at most ``batch_size`` rows each.

    On a GPU the batch also fits the free memory, so jobs that share one GPU do not run it out:
    the first batch's peak allocation per row is measured, and later batches take at most
    `FREE_MEMORY_SHARE` of what is free. A CUDA out-of-memory error (another job grew in between)
    halves the batch and retries it, down to one row.
    """
    outputs: list[torch.Tensor] = []
    size, start, measured = max(1, batch_size), 0, x.device.type != "cuda"
    while start < x.shape[0]:
        batch = x[start : start + size]
        if not measured:
            torch.cuda.reset_peak_memory_stats(x.device)
            allocated_before = torch.cuda.memory_allocated(x.device)
        try:
            outputs.append(fn(batch))
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
            size = max(1, size // 2)
            continue
        if not measured:
            row_bytes = (torch.cuda.max_memory_allocated(x.device) - allocated_before) / batch.shape[0]
            size = rows_fitting_free_memory(x.device, math.ceil(row_bytes), size)
            measured = True
        start += batch.shape[0]
    return outputs


@torch.no_grad()
def embed(model: ALModel, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eval-mode penultimate embeddings, [n, D]."""
    model.eval()
    parts = map_batches(model.embed, x, batch_size)
    return torch.cat(parts) if parts else torch.empty(0, model.embedding_dim, device=x.device)


@torch.no_grad()
def head_mc_log_probs(model: ALModel, emb_N_D: torch.Tensor, num_samples: int, batch_size: int) -> torch.Tensor:
    """K dropout masks on the head, as one batched op per batch: [N, K, C] log-probabilities."""
    linear = model.head_linear

    def sample(emb_b_D: torch.Tensor) -> torch.Tensor:
        expanded_b_K_D = emb_b_D.unsqueeze(1).expand(-1, num_samples, -1)
        logits_b_K_C = F.linear(F.dropout(expanded_b_K_D, p=model.dropout, training=True), linear.weight, linear.bias)
        return torch.log_softmax(logits_b_K_C, dim=2)

    parts = map_batches(sample, emb_N_D, max(1, batch_size // num_samples))
    return torch.cat(parts) if parts else torch.empty(0, num_samples, linear.out_features, device=emb_N_D.device)


def _set_dropout_active(model: nn.Module, active: bool) -> None:
    # only dropout layers switch: batch-norm statistics must stay frozen while sampling
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train(active)


@torch.no_grad()
def full_mc_log_probs(model: ALModel, x: torch.Tensor, num_samples: int, batch_size: int) -> torch.Tensor:
    """K full-network passes with every dropout layer active: [N, K, C] log-probabilities."""
    model.eval()
    _set_dropout_active(model, True)
    try:
        def sample(batch: torch.Tensor) -> torch.Tensor:
            return torch.stack([torch.log_softmax(model(batch)[0], dim=1) for _ in range(num_samples)], dim=1)

        return torch.cat(map_batches(sample, x, batch_size))
    finally:
        model.eval()


@torch.no_grad()
def infer_pool(
    model: ALModel,
    pool_x: torch.Tensor,
    pool_ids_N: torch.Tensor,
    needs: Iterable[str],
    settings: InferenceSettings,
    labelled_x: torch.Tensor | None = None,
) -> PoolView:
    """Fill a `PoolView` with the model-derived fields in ``needs``, each computed once.

    ``history`` is not computed by the model: the loop attaches it after RECORD.

    Args:
        pool_x: the N pool inputs, on the model's device.
        pool_ids_N: their dataset indices.
        needs: subset of ``strategies.NEED_FIELDS`` (the strategy's needs plus what RECORD uses).
        labelled_x: the labelled inputs, required when "labelled_emb" is needed.
    """
    needs = frozenset(needs)
    fields: dict[str, object] = {}
    want_emb = bool(needs & {"probs", "emb"}) or ("mc_log_probs" in needs and settings.mc_mode == "head")
    if want_emb:
        emb_N_D = embed(model, pool_x, settings.batch_size)
        if "emb" in needs:
            fields["emb_N_D"] = emb_N_D
        if "probs" in needs:
            # eval mode: the head's dropout is off, so these are the deterministic model's probabilities
            fields["probs_N_C"] = torch.softmax(model.classify(emb_N_D), dim=1)
    if "mc_log_probs" in needs:
        if settings.mc_mode == "head":
            fields["mc_log_probs_N_K_C"] = head_mc_log_probs(model, emb_N_D, settings.mc_samples, settings.batch_size)
        else:
            fields["mc_log_probs_N_K_C"] = full_mc_log_probs(model, pool_x, settings.mc_samples, settings.batch_size)
    if "labelled_emb" in needs:
        fields["labelled_emb_L_D"] = embed(model, labelled_x, settings.batch_size)
    return PoolView(pool_ids_N=pool_ids_N, **fields)
