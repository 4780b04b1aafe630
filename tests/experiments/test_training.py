"""Tests for experiments.training: determinism, the number of optimiser steps,
learning on an easy problem, the optimisers, and evaluate() against a manual computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from experiments.datasets import load_dataset
from experiments.models import build_model
from experiments.training import evaluate, num_train_steps, train_model
from tests.experiments.settings_helpers import plain_trainer


@pytest.fixture(scope="module")
def blobs():
    return load_dataset("synthetic", train_size=200, test_size=200, num_classes=3, num_features=8, class_sep=4.0)


def _model(dataset, seed: int = 0, **options):
    torch.manual_seed(seed)
    return build_model("mlp", input_shape=dataset.input_shape, num_classes=dataset.num_classes, hidden=[16], **options)


def _count_train_forwards(model) -> list[int]:
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]) if module.training else None)
    return calls


def test_same_seeds_same_model(blobs):
    settings = plain_trainer(epochs=3, batch_size=16)
    trained = []
    for _ in range(2):
        model = _model(blobs, seed=0)
        result = train_model(model, blobs.train_x[:50], blobs.train_y[:50], settings, torch.Generator().manual_seed(1))
        trained.append((model, result))
    (a, result_a), (b, result_b) = trained
    assert result_a == result_b
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    # another shuffling seed trains another model from the same init
    c = _model(blobs, seed=0)
    train_model(c, blobs.train_x[:50], blobs.train_y[:50], settings, torch.Generator().manual_seed(2))
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_training_does_not_touch_the_global_rng_for_shuffling(blobs):
    """Shuffling draws from the explicit generator: a different global seed gives the same batches.

    (Dropout masks do use the global RNG, so compare with dropout off.)
    """
    settings = plain_trainer(epochs=2, batch_size=8)
    params = []
    for global_seed in (0, 123):
        model = _model(blobs, seed=0, dropout=0.0)
        torch.manual_seed(global_seed)
        train_model(model, blobs.train_x[:30], blobs.train_y[:30], settings, torch.Generator().manual_seed(5))
        params.append([p.detach().clone() for p in model.parameters()])
    for pa, pb in zip(*params):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    "num_labelled, batch_size, epochs, min_steps",
    [
        (50, 16, 2, 0),  # 2 x ceil(50/16) = 8
        (50, 16, 2, 20),  # min_steps wins
        (64, 16, 3, 5),  # exact batches: 12
        (33, 32, 2, 0),  # the last batch holds one sample and is skipped: still 4 steps
        (5, 64, 1, 10),  # fewer labels than a batch
        (1, 64, 3, 0),  # one label: a batch of one is all there is
    ],
)
def test_number_of_steps(blobs, num_labelled, batch_size, epochs, min_steps):
    expected = max(epochs * math.ceil(num_labelled / batch_size), min_steps)
    settings = plain_trainer(epochs=epochs, min_steps=min_steps, batch_size=batch_size)
    assert num_train_steps(num_labelled, settings) == expected
    model = _model(blobs)
    forwards = _count_train_forwards(model)
    result = train_model(
        model, blobs.train_x[:num_labelled], blobs.train_y[:num_labelled], settings, torch.Generator().manual_seed(0)
    )
    assert result.steps == expected
    assert len(forwards) == expected
    assert all(size <= batch_size for size in forwards)
    if num_labelled >= 2:
        assert min(forwards) >= 2  # never a batch of one (it breaks batch norm)
    assert math.isfinite(result.final_loss)


def test_each_epoch_visits_every_sample(blobs):
    model = _model(blobs)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()) if module.training else None)
    x = blobs.train_x[:40]
    train_model(model, x, blobs.train_y[:40], plain_trainer(epochs=1, batch_size=8), torch.Generator().manual_seed(0))
    rows = torch.cat(seen)
    assert rows.shape == x.shape
    # the same rows, shuffled
    assert torch.equal(rows[torch.argsort(rows[:, 0])], x[torch.argsort(x[:, 0])])
    assert not torch.equal(rows, x)


def test_loss_decreases_and_the_model_learns(blobs):
    model = _model(blobs)
    before = evaluate(model, blobs.test_x, blobs.test_y)
    result = train_model(
        model, blobs.train_x, blobs.train_y, plain_trainer(epochs=20, batch_size=32, lr=1e-2), torch.Generator().manual_seed(0)
    )
    after = evaluate(model, blobs.test_x, blobs.test_y)
    assert after.loss < 0.5 * before.loss
    assert result.final_loss < before.loss
    assert after.accuracy > 0.9 > before.accuracy


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_trains(blobs, optimizer):
    model = _model(blobs)
    before = evaluate(model, blobs.train_x, blobs.train_y).loss
    settings = plain_trainer(epochs=10, batch_size=32, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 1e-2)
    train_model(model, blobs.train_x, blobs.train_y, settings, torch.Generator().manual_seed(0))
    assert evaluate(model, blobs.train_x, blobs.train_y).loss < before


def test_training_leaves_the_model_in_train_mode_and_evaluate_switches_to_eval(blobs):
    model = _model(blobs)
    train_model(model, blobs.train_x[:10], blobs.train_y[:10], plain_trainer(epochs=1), torch.Generator())
    assert model.training
    evaluate(model, blobs.test_x, blobs.test_y)
    assert not model.training


@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_evaluate_matches_a_manual_computation(blobs, batch_size):
    model = _model(blobs)
    train_model(model, blobs.train_x[:30], blobs.train_y[:30], plain_trainer(epochs=2), torch.Generator().manual_seed(0))
    x, y = blobs.test_x[:50], blobs.test_y[:50]
    result = evaluate(model, x, y, batch_size=batch_size)
    model.eval()
    with torch.no_grad():
        logits = model(x)[0]
    accuracy = (logits.argmax(1) == y).double().mean().item()
    loss = F.cross_entropy(logits.double(), y).item()
    assert result.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert 0 < result.accuracy < 1  # neither trivial case


def test_evaluate_is_deterministic_despite_dropout(blobs):
    model = _model(blobs).train()
    a = evaluate(model, blobs.test_x, blobs.test_y)
    b = evaluate(model, blobs.test_x, blobs.test_y)
    assert a == b


def test_no_labels_means_no_training(blobs):
    model = _model(blobs)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_model(model, blobs.train_x[:0], blobs.train_y[:0], plain_trainer(min_steps=50), torch.Generator())
    assert result.steps == 0 and math.isnan(result.final_loss)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --------------------------------------------------------------------------- the recipe (issue 7)


def test_cosine_schedule_by_hand():
    from experiments.training import learning_rate_factor

    settings = plain_trainer(lr_schedule="cosine", warmup_steps=2)
    # warm-up: (step + 1) / 2; then 0.5 * (1 + cos(pi * (step - 2) / (10 - 2)))
    factors = [learning_rate_factor(step, 10, settings) for step in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == pytest.approx(1.0)
    assert factors[6] == pytest.approx(0.5)  # halfway through the decay
    assert factors[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert learning_rate_factor(5, 10, plain_trainer()) == 1.0  # constant


def test_cosine_schedule_reaches_the_optimizer(blobs):
    from experiments.training import learning_rate_factor

    model = _model(blobs)
    seen = []
    settings = plain_trainer(epochs=0, min_steps=6, batch_size=16, lr=0.1, lr_schedule="cosine", warmup_steps=1)
    original_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    torch.optim.Adam.step = step
    try:
        train_model(model, blobs.train_x[:50], blobs.train_y[:50], settings, torch.Generator().manual_seed(0))
    finally:
        torch.optim.Adam.step = original_step
    assert seen == pytest.approx([0.1 * learning_rate_factor(s, 6, settings) for s in range(6)])


def test_weight_averaging_evaluates_the_average_of_the_last_steps(blobs):
    """With ema_decay d the trained model holds the EMA of the second half's iterates, not the last iterate."""
    settings = plain_trainer(epochs=0, min_steps=5, batch_size=16, ema_decay=0.5)
    snapshots = []
    model = _model(blobs, dropout=0.0)
    original_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        result = original_step(self, *args, **kwargs)
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return result

    torch.optim.Adam.step = step
    try:
        train_model(model, blobs.train_x[:50], blobs.train_y[:50], settings, torch.Generator().manual_seed(0))
    finally:
        torch.optim.Adam.step = original_step
    # averaging starts at step 5 // 2 = 2 (the third iterate); then decay min(0.5, (1 + n) / (10 + n))
    # after n averaged iterates: 2/11, then 3/12
    expected = snapshots[2]
    for decay, snapshot in zip((2 / 11, 3 / 12), snapshots[3:]):
        expected = [decay * e + (1 - decay) * s for e, s in zip(expected, snapshot)]
    for parameter, value in zip(model.parameters(), expected):
        torch.testing.assert_close(parameter.detach(), value)
    assert not all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), snapshots[-1]))


def test_nadam_is_an_optimizer(blobs):
    model = _model(blobs)
    before = evaluate(model, blobs.test_x, blobs.test_y)
    settings = plain_trainer(epochs=20, batch_size=32, lr=1e-2, optimizer="nadam")
    train_model(model, blobs.train_x, blobs.train_y, settings, torch.Generator().manual_seed(0))
    after = evaluate(model, blobs.test_x, blobs.test_y)
    assert after.loss < 0.5 * before.loss and after.accuracy > 0.9 > before.accuracy
