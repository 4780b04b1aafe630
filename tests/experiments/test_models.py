"""Tests for experiments.models: shapes, the head split used by INFER, dropout
behaviour, deterministic init, and configuration errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from experiments.errors import ConfigError
from experiments.models import MODEL_NAMES, ALModel, build_model
from strategies.errors import UnknownNameError

CASES = [
    # (name, input_shape, options, embedding dim)
    ("mlp", (16,), {}, 128),
    ("mlp", (1, 8, 8), {"hidden": [32]}, 32),
    ("cnn", (1, 28, 28), {}, 128),
    ("cnn", (3, 32, 32), {"width": 8, "embedding_dim": 24}, 24),
    ("cnn", (1, 8, 8), {"width": 4}, 128),
    ("resnet18", (3, 32, 32), {}, 512),
    ("resnet18", (1, 28, 28), {}, 512),
]


def _build(name, shape, options, num_classes=5, seed=0) -> ALModel:
    torch.manual_seed(seed)
    return build_model(name, input_shape=shape, num_classes=num_classes, **options)


@pytest.mark.parametrize("name, shape, options, dim", CASES)
def test_shapes_and_head_consistency(name, shape, options, dim):
    model = _build(name, shape, options).eval()
    assert isinstance(model, ALModel)
    assert model.embedding_dim == dim and model.num_classes == 5 and model.dropout == 0.5
    assert model.supports_mc_dropout
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, emb = model(x)
        assert logits.shape == (3, 5) and emb.shape == (3, dim)
        assert logits.dtype == emb.dtype == torch.float32
        assert torch.all(emb >= 0)  # taken after the last ReLU
        torch.testing.assert_close(model.embed(x), emb)
        torch.testing.assert_close(model.classify(emb), logits)
        lin = model.head_linear
        assert isinstance(lin, nn.Linear) and lin.weight.shape == (5, dim)
        torch.testing.assert_close(emb @ lin.weight.T + lin.bias, logits, rtol=1e-5, atol=1e-5)
        # Eval mode is deterministic.
        torch.testing.assert_close(model(x)[0], logits, rtol=0, atol=0)


@pytest.mark.parametrize("name, shape", [("mlp", (16,)), ("cnn", (1, 28, 28))])
def test_train_mode_dropout_is_stochastic(name, shape):
    model = _build(name, shape, {}).train()
    x = torch.randn(8, *shape)
    with torch.no_grad():
        a, emb_a = model(x)
        b, emb_b = model(x)
    torch.testing.assert_close(emb_a, emb_b)  # dropout sits in the head only
    assert not torch.allclose(a, b)


def test_batched_head_mc_dropout_matches_the_recipe():
    """INFER's K dropout masks in one op: [B, K, C], different per sample, mean near eval logits."""
    model = _build("mlp", (16,), {"dropout": 0.3}).eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        logits, emb = model(x)
        lin, k = model.head_linear, 2000
        mc = F.dropout(emb[:, None, :].expand(-1, k, -1), model.dropout, training=True) @ lin.weight.T + lin.bias
    assert mc.shape == (4, k, 5)
    assert not torch.allclose(mc[:, 0], mc[:, 1])
    # Inverted dropout is unbiased: the average of many masks approaches the eval logits.
    torch.testing.assert_close(mc.mean(1), logits, atol=0.05, rtol=0)


def test_no_dropout_means_no_mc_and_train_mode_deterministic():
    model = _build("cnn", (1, 28, 28), {"dropout": 0.0}).train()
    assert not model.supports_mc_dropout and model.dropout == 0.0
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("name, shape, options, dim", CASES[:5] + CASES[6:])
def test_init_is_deterministic_given_the_seed(name, shape, options, dim):
    a = _build(name, shape, options, seed=7).state_dict()
    b = _build(name, shape, options, seed=7).state_dict()
    c = _build(name, shape, options, seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_resnet18_is_the_cifar_variant():
    model = _build("resnet18", (1, 28, 28), {"dropout": 0.1}, num_classes=10)
    net = model.backbone
    assert net.conv1.in_channels == 1 and net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)
    assert model.head_linear.in_features == 512 and model.head_linear.out_features == 10
    # One training step works (batch norm in train mode, gradients reach the stem).
    model.train()
    logits, _ = model(torch.randn(4, 1, 28, 28))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0


def test_mlp_hidden_option():
    model = _build("mlp", (3, 4, 4), {"hidden": (20, 10, 6)})
    linears = [m for m in model.backbone if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(48, 20), (20, 10), (10, 6)]
    assert model.embedding_dim == 6
    assert _build("mlp", (4,), {"hidden": 3}).embedding_dim == 3


def test_cnn_on_vector_input_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        build_model("cnn", input_shape=(16,), num_classes=4)
    msg = str(info.value)
    assert msg.startswith("model 'cnn' needs image inputs (C, H, W); dataset gives (16,)") and "\n" not in msg
    with pytest.raises(ConfigError, match="needs image inputs"):
        build_model("resnet18", input_shape=(16,), num_classes=4)
    with pytest.raises(ConfigError, match="at least 4x4"):
        build_model("cnn", input_shape=(1, 3, 3), num_classes=4)


@pytest.mark.parametrize(
    "name, options, text",
    [
        ("mlp", {"dropout": 1.0}, "model.dropout must be a number in [0, 1); got 1.0"),
        ("cnn", {"dropout": -0.1}, "model.dropout must be a number in [0, 1); got -0.1"),
        ("resnet18", {"dropout": "0.5"}, "model.dropout must be a number in [0, 1); got '0.5'"),
        ("mlp", {"hidden": []}, "model.hidden must be a non-empty list of integers >= 1; got []"),
        ("mlp", {"hidden": [64, 0]}, "model.hidden must be a non-empty list of integers >= 1; got [64, 0]"),
        ("mlp", {"hidden": "64"}, "model.hidden must be"),
        ("cnn", {"width": 0}, "model.width must be an integer >= 1; got 0"),
        ("cnn", {"embedding_dim": 2.5}, "model.embedding_dim must be an integer >= 1; got 2.5"),
        ("mlp", {"width": 3}, "model.width: unknown option for model 'mlp'; accepted options: dropout, hidden"),
        (
            "resnet18",
            {"pretrained": True},
            "model.pretrained: unknown option for model 'resnet18'; accepted options: dropout",
        ),
    ],
)
def test_option_errors(name, options, text):
    shape = (16,) if name == "mlp" else (1, 28, 28)
    with pytest.raises(ConfigError) as info:
        build_model(name, input_shape=shape, num_classes=3, **options)
    assert str(info.value).startswith(text) and "\n" not in str(info.value)


def test_bad_shapes_and_classes():
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2; got 1"):
        build_model("mlp", input_shape=(4,), num_classes=1)
    with pytest.raises(ConfigError, match="input_shape must be"):
        build_model("mlp", input_shape=(), num_classes=3)


def test_unknown_model_name():
    with pytest.raises(UnknownNameError) as info:
        build_model("resnet", input_shape=(3, 32, 32), num_classes=10)
    assert info.value.closest == ["resnet18"] and info.value.key == "model.name"
    assert "valid: cnn, mlp, resnet18" in str(info.value)
    assert MODEL_NAMES == ("cnn", "mlp", "resnet18")
