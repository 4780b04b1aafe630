"""Models for AL runs: a backbone giving embeddings, and a dropout + linear head.

Every model is an :class:`ALModel`::

    x [B, *input_shape] --backbone--> emb [B, D] --Dropout(p)--> --Linear(D, C)--> logits [B, C]

The split is what INFER needs: the backbone runs once per pool sample, and
MC dropout samples (K of them) are drawn on the head only, as one batched op
through :attr:`ALModel.head_linear`::

    W, b = model.head_linear.weight, model.head_linear.bias
    mc_logits_B_K_C = F.dropout(emb_B_D[:, None, :].expand(-1, K, -1), p, training=True) @ W.T + b

Names: ``cnn``, ``mlp``, ``resnet18``, registered with `register_model`; other
packages add more through the entry-point group ``alsweep.models`` (the entry
point names a module whose import registers them). A builder is
``fn(input_shape, num_classes, options) -> ALModel`` and receives its
registered defaults overridden by the config. Initialisation uses torch's
global RNG, so the caller seeds it (``torch.manual_seed``) for a reproducible
model. No pretrained weights are ever downloaded.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from experiments.errors import ConfigError
from experiments.registry import LiveNames, Registry, Spec

__all__ = ["ALModel", "ENTRY_POINT_GROUP", "MODELS", "MODEL_NAMES", "available_models", "build_model", "get_model", "register_model"]

ENTRY_POINT_GROUP = "alsweep.models"

MODELS: Registry = Registry("model", ENTRY_POINT_GROUP, config_key="model.name")

#: The registered model names, plugins included (read at each use).
MODEL_NAMES = LiveNames(MODELS)

Builder = Callable[[tuple[int, ...], int, Mapping[str, Any]], "ALModel"]


def register_model(
    *, name: str, defaults: Mapping[str, Any] | None = None, description: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator: register a builder ``fn(input_shape, num_classes, options) -> ALModel`` under ``name``."""
    return MODELS.register(name=name, defaults=defaults, description=description)


def get_model(name: str) -> Spec:
    """The spec registered under ``name``; UnknownNameError lists valid names and the closest one."""
    return MODELS.get(name)


def available_models() -> tuple[str, ...]:
    return MODELS.names()


class ALModel(nn.Module):
    """backbone -> embedding ``[B, D]``; head = ``Dropout(p) -> Linear(D, C)``.

    Attributes: ``embedding_dim`` (D), ``num_classes`` (C), ``dropout`` (p, the
    head's dropout probability), ``name`` (the registry name it was built as).
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int, num_classes: int, dropout: float, name: str = ""):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))
        self.embedding_dim = int(embedding_dim)
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        self.name = name

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features ``[B, D]`` (after the backbone's last nonlinearity) of ``x`` ``[B, *input_shape]``."""
        return self.backbone(x)

    def classify(self, emb: Tensor) -> Tensor:
        """Logits ``[B, C]`` from embeddings ``[B, D]``; dropout is active only in train mode."""
        return self.head(emb)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [B, C], emb [B, D])`` for ``x`` ``[B, *input_shape]``."""
        emb = self.embed(x)
        return self.classify(emb), emb

    @property
    def head_linear(self) -> nn.Linear:
        """The final ``Linear(D, C)``: lets INFER apply K dropout masks to the head in one op."""
        return self.head[1]

    @property
    def supports_mc_dropout(self) -> bool:
        """True when the head has dropout (p > 0), so MC-dropout samples differ."""
        return self.dropout > 0.0

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, embedding_dim={self.embedding_dim}, "
            f"num_classes={self.num_classes}, dropout={self.dropout}"
        )


# --------------------------------------------------------------------------- option checks


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_dropout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"model.dropout must be a number in [0, 1); got {value!r}")
    return float(value)


def _check_pos_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"model.{key} must be an integer >= 1; got {value!r}")
    return int(value)


def _image_shape(name: str, input_shape: tuple[int, ...], min_hw: int) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(
            f"model '{name}' needs image inputs (C, H, W); dataset gives {tuple(input_shape)}: "
            "pick model.name=mlp or an image dataset"
        )
    c, h, w = input_shape
    if h < min_hw or w < min_hw:
        raise ConfigError(
            f"model '{name}' needs images of at least {min_hw}x{min_hw}; dataset gives {tuple(input_shape)}"
        )
    return c, h, w


# --------------------------------------------------------------------------- builders


@register_model(
    name="mlp", defaults={"dropout": 0.5, "hidden": (256, 128)}, description="fully connected; any input shape"
)
def _build_mlp(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> ALModel:
    """Flatten -> [Linear -> ReLU] per hidden width; embedding = last hidden layer."""
    opts = options  # registered defaults merged and unknown keys refused by build_model
    dropout = _check_dropout(opts["dropout"])
    hidden = opts["hidden"]
    if _is_int(hidden):
        hidden = (hidden,)
    # Hydra hands lists as ListConfig: accept any non-string iterable of positive ints.
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
        raise ConfigError(f"model.hidden must be a non-empty list of integers >= 1; got {hidden!r}")
    hidden = tuple(hidden)
    if not hidden or not all(_is_int(h) and h >= 1 for h in hidden):
        raise ConfigError(f"model.hidden must be a non-empty list of integers >= 1; got {list(hidden)!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True)]
        width = int(h)
    return ALModel(nn.Sequential(*layers), width, num_classes, dropout, name="mlp")


@register_model(
    name="cnn",
    defaults={"dropout": 0.5, "width": 32, "embedding_dim": 128},
    description="two conv blocks + linear embedding; images of at least 4x4",
)
def _build_cnn(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> ALModel:
    """conv(C->w) ReLU pool2 -> conv(w->2w) ReLU pool2 -> flatten -> Linear(->D) ReLU."""
    opts = options  # registered defaults merged and unknown keys refused by build_model
    dropout = _check_dropout(opts["dropout"])
    width = _check_pos_int("width", opts["width"])
    emb_dim = _check_pos_int("embedding_dim", opts["embedding_dim"])
    c, h, w = _image_shape("cnn", input_shape, min_hw=4)  # two 2x2 poolings need 4 pixels a side
    backbone = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 4) * (w // 4), emb_dim),
        nn.ReLU(inplace=True),
    )
    return ALModel(backbone, emb_dim, num_classes, dropout, name="cnn")


@register_model(
    name="resnet18", defaults={"dropout": 0.5}, description="torchvision ResNet-18, CIFAR stem, random init; images"
)
def _build_resnet18(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> ALModel:
    """torchvision ResNet-18 in its CIFAR form: 3x3 stride-1 stem, no max-pool, 512-d embedding."""
    opts = options  # registered defaults merged and unknown keys refused by build_model
    dropout = _check_dropout(opts["dropout"])
    c, _, _ = _image_shape("resnet18", input_shape, min_hw=1)  # adaptive pooling takes any size
    from torchvision.models import resnet18  # lazy: torchvision.models is slow to import

    net = resnet18(weights=None)
    # The ImageNet stem (7x7 stride 2 + max-pool) would shrink 32x32 to 8x8 before layer1.
    net.conv1 = nn.Conv2d(c, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits convs
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()  # forward now ends at flatten(avgpool(...)): [B, 512]
    return ALModel(net, 512, num_classes, dropout, name="resnet18")


def build_model(name: str, *, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> ALModel:
    """Build model ``name`` for inputs ``[B, *input_shape]`` and ``num_classes`` classes.

    ``options`` per model (defaults): ``mlp`` dropout=0.5, hidden=(256, 128);
    ``cnn`` dropout=0.5, width=32, embedding_dim=128; ``resnet18`` dropout=0.5.
    Raises :class:`UnknownNameError` for an unknown name and :class:`ConfigError`
    for an unknown option, an out-of-range value or inputs the model cannot take.
    Weights come from torch's global RNG: seed it first for a reproducible model.
    """
    spec = MODELS.get(name)
    shape = tuple(input_shape)
    if not shape or not all(_is_int(s) and s >= 1 for s in shape):
        raise ConfigError(
            f"model '{name}': input_shape must be a non-empty tuple of integers >= 1; got {input_shape!r}"
        )
    if not _is_int(num_classes) or num_classes < 2:
        raise ConfigError(f"model '{name}': num_classes must be an integer >= 2; got {num_classes!r}")
    return spec.fn(tuple(int(s) for s in shape), int(num_classes), MODELS.resolve_options(name, options))
