"""TRAIN and EVALUATE: seeded mini-batch training on the labelled set, test-set scoring.

Data are tensors already on the run's device, so batches are index slices:
no DataLoader, no per-sample Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from experiments.inference import map_batches
from experiments.models import ALModel
from experiments.settings import TrainerSettings

OPTIMIZERS = ("adam", "adamw", "nadam", "sgd")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainResult:
    steps: int
    final_loss: float


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    loss: float


def _optimizer(model: ALModel, settings: TrainerSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam}[settings.optimizer]
    return optimizer_class(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def learning_rate_factor(step: int, total_steps: int, settings: TrainerSettings) -> float:
    """Multiplier of ``settings.lr`` at optimiser step ``step`` (0-based) of ``total_steps``."""
    if settings.lr_schedule == "constant":
        return 1.0
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    decay_steps = max(total_steps - settings.warmup_steps, 1)
    progress = min((step - settings.warmup_steps) / decay_steps, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _ema_update(ema_decay: float):
    """EMA step whose decay warms up as min(ema_decay, (1 + n) / (10 + n)) after n averaged iterates,
    so that the first iterate averaged does not dominate a short run (as in TF's and timm's EMA)."""

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        decay = min(ema_decay, (1.0 + n) / (10.0 + n))
        return averaged + (current - averaged) * (1.0 - decay)

    return update


def num_train_steps(num_labelled: int, settings: TrainerSettings) -> int:
    return max(settings.epochs * math.ceil(num_labelled / settings.batch_size), settings.min_steps)


def train_model(
    model: ALModel, x: torch.Tensor, y: torch.Tensor, settings: TrainerSettings, generator: torch.Generator
) -> TrainResult:
    """Minimise cross-entropy on (x, y) for `num_train_steps` steps, shuffling with ``generator``."""
    num_labelled = x.shape[0]
    if num_labelled == 0:
        # a cold start (loop.initial_size=0): round 0 evaluates the untrained model
        return TrainResult(steps=0, final_loss=math.nan)
    total_steps = num_train_steps(num_labelled, settings)
    optimizer = _optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, settings)
    )
    average = (
        torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema_update(settings.ema_decay), use_buffers=True)
        if settings.ema_decay > 0
        else None
    )
    # average only the second half: the first iterates are far from the end of the run
    average_from = total_steps // 2
    model.train()
    steps, loss = 0, torch.tensor(math.nan)
    while steps < total_steps:
        order = torch.randperm(num_labelled, generator=generator).to(x.device)
        for batch in order.split(settings.batch_size):
            # a batch of one breaks batch-norm in train mode; its sample is seen next epoch
            if batch.shape[0] < 2 <= num_labelled:
                continue
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model(x[batch])
            loss = F.cross_entropy(logits, y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            if average is not None and steps >= average_from:
                average.update_parameters(model)
            steps += 1
            if steps >= total_steps:
                break
    if average is not None and steps > 0:
        # INFER and EVALUATE then both see the averaged weights
        model.load_state_dict(average.module.state_dict())
    return TrainResult(steps=steps, final_loss=float(loss.detach()))


@torch.no_grad()
def evaluate(model: ALModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> EvalResult:
    """Accuracy and mean cross-entropy of the eval-mode model."""
    model.eval()

    def correct_and_loss(rows: torch.Tensor) -> torch.Tensor:
        logits, _ = model(x[rows])
        target = y[rows]
        correct = (logits.argmax(dim=1) == target).sum().to(torch.float64)
        return torch.stack([correct, F.cross_entropy(logits, target, reduction="sum").to(torch.float64)])

    totals = map_batches(correct_and_loss, torch.arange(x.shape[0], device=x.device), batch_size)
    correct, loss_sum = torch.stack(totals).sum(dim=0).tolist() if totals else (0.0, 0.0)
    count = max(x.shape[0], 1)
    return EvalResult(accuracy=int(correct) / count, loss=loss_sum / count)
