"""Tests for experiments.inference (INFER): exactly the fields asked for, eval-mode
probabilities, head and full-network MC dropout, frozen batch-norm statistics,
and the labelled-set embeddings (including an empty labelled set)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from experiments.inference import (
    InferenceSettings,
    embed,
    full_mc_log_probs,
    head_mc_log_probs,
    infer_pool,
)
from experiments.models import ALModel, build_model
from strategies import NEED_FIELDS

NUM_CLASSES, NUM_FEATURES = 4, 12
MODEL_NEEDS = ("probs", "mc_log_probs", "emb", "labelled_emb")


def _mlp(dropout: float = 0.5, seed: int = 0) -> ALModel:
    torch.manual_seed(seed)
    return build_model("mlp", input_shape=(NUM_FEATURES,), num_classes=NUM_CLASSES, hidden=[32, 16], dropout=dropout)


def _x(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, NUM_FEATURES, generator=torch.Generator().manual_seed(seed))


def _bn_model(seed: int = 0) -> ALModel:
    """A tiny model with batch norm and dropout inside the backbone (what full MC mode is for)."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(NUM_FEATURES, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3))
    model = ALModel(backbone, 16, NUM_CLASSES, dropout=0.5, name="tiny_bn")
    # give the running statistics non-trivial values, as after training
    model.train()
    with torch.no_grad():
        for seed_x in range(3):
            model(3.0 * _x(64, seed=10 + seed_x) + 1.0)
    return model.eval()


def _subsets(items):
    return [frozenset(c) for r in range(len(items) + 1) for c in itertools.combinations(items, r)]


@pytest.mark.parametrize("needs", _subsets(MODEL_NEEDS), ids=lambda s: "+".join(sorted(s)) or "none")
@pytest.mark.parametrize("mc_mode", ["head", "full"])
def test_fields_present_exactly_for_needs(needs, mc_mode):
    model = _mlp()
    pool_x, labelled_x = _x(30), _x(7, seed=2)
    pool_ids = torch.arange(100, 130)
    settings = InferenceSettings(batch_size=8, mc_samples=3, mc_mode=mc_mode)
    pool = infer_pool(model, pool_x, pool_ids, needs, settings, labelled_x=labelled_x)
    assert pool.pool_ids_N is pool_ids
    assert pool.history is None  # attached by the loop after RECORD, never by INFER
    for need in MODEL_NEEDS:
        value = getattr(pool, NEED_FIELDS[need])
        assert (value is not None) == (need in needs), need
    if "probs" in needs:
        assert pool.probs_N_C.shape == (30, NUM_CLASSES)
    if "emb" in needs:
        assert pool.emb_N_D.shape == (30, 16)
    if "mc_log_probs" in needs:
        assert pool.mc_log_probs_N_K_C.shape == (30, 3, NUM_CLASSES)
    if "labelled_emb" in needs:
        assert pool.labelled_emb_L_D.shape == (7, 16)


def test_probs_are_the_softmax_of_the_eval_mode_forward():
    model = _mlp().train()  # INFER must switch to eval mode itself
    pool_x = _x(50)
    pool = infer_pool(model, pool_x, torch.arange(50), {"probs", "emb"}, InferenceSettings(batch_size=16))
    assert not model.training
    with torch.no_grad():
        logits, emb = model.eval()(pool_x)
    torch.testing.assert_close(pool.probs_N_C, torch.softmax(logits, dim=1))
    torch.testing.assert_close(pool.emb_N_D, emb)
    torch.testing.assert_close(pool.probs_N_C.sum(1), torch.ones(50))
    # batching does not change anything
    whole = infer_pool(model, pool_x, torch.arange(50), {"probs"}, InferenceSettings(batch_size=1024))
    torch.testing.assert_close(whole.probs_N_C, pool.probs_N_C)


def test_inference_needs_no_grad():
    model = _mlp()
    pool = infer_pool(model, _x(10), torch.arange(10), set(MODEL_NEEDS), InferenceSettings(mc_samples=2), labelled_x=_x(3))
    for field in (pool.probs_N_C, pool.mc_log_probs_N_K_C, pool.emb_N_D, pool.labelled_emb_L_D):
        assert not field.requires_grad


def test_head_mc_log_probs():
    model = _mlp(dropout=0.5)
    pool_x = _x(40)
    torch.manual_seed(0)
    pool = infer_pool(model, pool_x, torch.arange(40), {"mc_log_probs"}, InferenceSettings(batch_size=64, mc_samples=6))
    mc = pool.mc_log_probs_N_K_C
    assert mc.shape == (40, 6, NUM_CLASSES) and mc.dtype == torch.float32
    torch.testing.assert_close(mc.logsumexp(dim=2), torch.zeros(40, 6), atol=1e-5, rtol=0)
    assert (mc <= 0).all()
    # the K masks differ from each other (every sample in the pool sees different masks)
    for k in range(1, 6):
        assert not torch.allclose(mc[:, 0], mc[:, k])
    # and are not all the eval-mode prediction
    with torch.no_grad():
        eval_log_probs = torch.log_softmax(model(pool_x)[0], dim=1)
    assert not torch.allclose(mc[:, 0], eval_log_probs)


def test_head_mc_mean_approaches_the_eval_probs():
    model = _mlp(dropout=0.1)
    pool_x = _x(20)
    with torch.no_grad():
        emb = embed(model, pool_x, 64)
        eval_probs = torch.softmax(model.classify(emb), dim=1)
    torch.manual_seed(0)
    mc = head_mc_log_probs(model, emb, num_samples=4000, batch_size=10**6)
    assert mc.shape == (20, 4000, NUM_CLASSES)
    mean_probs = mc.exp().mean(dim=1)
    # inverted dropout is unbiased in the logits; with p = 0.1 the probabilities barely move
    torch.testing.assert_close(mean_probs, eval_probs, atol=0.03, rtol=0)


def test_head_mc_batches_by_batch_size_over_k():
    model = _mlp()
    emb = embed(model, _x(25), 64)
    torch.manual_seed(0)
    small = head_mc_log_probs(model, emb, num_samples=4, batch_size=8)  # 2 rows per batch
    assert small.shape == (25, 4, NUM_CLASSES)
    torch.manual_seed(0)
    tiny = head_mc_log_probs(model, emb, num_samples=4, batch_size=1)  # at least one row per batch
    assert tiny.shape == (25, 4, NUM_CLASSES)


@pytest.mark.parametrize("mc_mode", ["head", "full"])
def test_without_dropout_every_mc_sample_is_the_eval_prediction(mc_mode):
    model = _mlp(dropout=0.0)
    pool_x = _x(30)
    pool = infer_pool(
        model, pool_x, torch.arange(30), {"mc_log_probs"}, InferenceSettings(batch_size=7, mc_samples=5, mc_mode=mc_mode)
    )
    with torch.no_grad():
        eval_log_probs = torch.log_softmax(model.eval()(pool_x)[0], dim=1)
    torch.testing.assert_close(pool.mc_log_probs_N_K_C, eval_log_probs[:, None].expand(-1, 5, -1))


def test_full_mode_shape_samples_and_frozen_batch_norm():
    model = _bn_model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    pool_x = _x(33)
    pool = infer_pool(
        model, pool_x, torch.arange(33), {"mc_log_probs", "probs"}, InferenceSettings(batch_size=10, mc_samples=5, mc_mode="full")
    )
    mc = pool.mc_log_probs_N_K_C
    assert mc.shape == (33, 5, NUM_CLASSES)
    torch.testing.assert_close(mc.logsumexp(dim=2), torch.zeros(33, 5), atol=1e-5, rtol=0)
    assert not torch.allclose(mc[:, 0], mc[:, 1])
    # running mean / var / num_batches_tracked untouched, and the model is back in eval mode
    after = model.state_dict()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    assert not any(module.training for module in model.modules())
    # batch norm used its running statistics (eval) while sampling: a one-row pool gives
    # the same distribution as that row inside a batch, which train-mode batch norm would not
    row = pool_x[:1]
    with torch.no_grad():
        eval_logits = model(row)[0]
    torch.testing.assert_close(pool.probs_N_C[:1], torch.softmax(eval_logits, dim=1))
    torch.manual_seed(0)
    single = full_mc_log_probs(model, row, num_samples=2000, batch_size=10)
    torch.testing.assert_close(single.exp().mean(dim=1), torch.softmax(eval_logits, dim=1), atol=0.05, rtol=0)


def test_full_mode_on_a_cnn():
    torch.manual_seed(0)
    model = build_model("cnn", input_shape=(1, 8, 8), num_classes=3, width=4, embedding_dim=8)
    x = torch.randn(6, 1, 8, 8)
    mc = full_mc_log_probs(model, x, num_samples=4, batch_size=4)
    assert mc.shape == (6, 4, 3)
    assert not model.training and not model.head[0].training


def test_labelled_embeddings():
    model = _mlp()
    labelled_x = _x(9, seed=5)
    pool = infer_pool(model, _x(5), torch.arange(5), {"labelled_emb"}, InferenceSettings(batch_size=4), labelled_x=labelled_x)
    with torch.no_grad():
        expected = model.eval().embed(labelled_x)
    torch.testing.assert_close(pool.labelled_emb_L_D, expected)
    assert pool.emb_N_D is None


def test_empty_labelled_set_gives_an_L_0_embedding():
    model = _mlp()
    pool = infer_pool(
        model, _x(5), torch.arange(5), {"emb", "labelled_emb"}, InferenceSettings(), labelled_x=torch.empty(0, NUM_FEATURES)
    )
    assert pool.labelled_emb_L_D.shape == (0, 16)
    assert pool.labelled_emb_L_D.dtype == pool.emb_N_D.dtype


def test_empty_pool():
    model = _mlp()
    pool = infer_pool(
        model, torch.empty(0, NUM_FEATURES), torch.empty(0, dtype=torch.int64), {"probs", "emb"}, InferenceSettings()
    )
    assert pool.emb_N_D.shape == (0, 16) and pool.probs_N_C.shape == (0, NUM_CLASSES)


@pytest.mark.parametrize(
    "needs, mc_mode, expected_rows",
    [
        ({"labelled_emb"}, "head", [7]),  # the labelled set only, never the pool
        ({"mc_log_probs"}, "full", []),  # full MC runs the whole network: no separate embedding pass
        ({"mc_log_probs"}, "head", [30]),
        ({"probs", "emb", "mc_log_probs"}, "head", [30]),  # one shared backbone pass
        ({"probs", "emb", "mc_log_probs", "labelled_emb"}, "head", [30, 7]),
        (set(), "head", []),
    ],
)
def test_the_backbone_runs_once_per_input_set(monkeypatch, needs, mc_mode, expected_rows):
    import experiments.inference as inference_module

    rows = []
    original = inference_module.embed

    def spy(model, x, batch_size):
        rows.append(x.shape[0])
        return original(model, x, batch_size)

    monkeypatch.setattr(inference_module, "embed", spy)
    settings = InferenceSettings(batch_size=64, mc_samples=3, mc_mode=mc_mode)
    infer_pool(_mlp(), _x(30), torch.arange(30), needs, settings, labelled_x=_x(7, seed=2))
    assert rows == expected_rows
