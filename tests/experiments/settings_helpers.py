"""Trainer settings for unit tests of the training mechanics, apart from the default recipe."""

from __future__ import annotations

from experiments.training import TrainerSettings

#: Plain Adam, constant rate, no EMA, no step floor: each test turns on the one feature it checks.
PLAIN_TRAINER = dict(
    epochs=10, min_steps=0, optimizer="adam", weight_decay=0.0, lr_schedule="constant", warmup_steps=0, ema_decay=0.0
)


def plain_trainer(**changes) -> TrainerSettings:
    return TrainerSettings(**{**PLAIN_TRAINER, **changes})
