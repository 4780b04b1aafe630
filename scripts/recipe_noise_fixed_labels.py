#!/usr/bin/env python
"""Training-seed noise at a fixed labelled set (demo model, 300 class-balanced labels from seed 0):
std over 4 training seeds of test accuracy, old recipe (Adam, constant lr) vs the new default; also time ratio."""
import sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.datasets import load_dataset
from experiments.models import build_model
from experiments.training import TrainerSettings, train_model, evaluate
from experiments.loop import initial_labelled_ids
torch.set_num_threads(1)
data = load_dataset("fashion_mnist")
ids = initial_labelled_ids(data.train_y, 300, "balanced", torch.Generator().manual_seed(0))
x, y = data.train_x[ids], data.train_y[ids]
old = TrainerSettings(epochs=30, min_steps=300, optimizer="adam", lr=1e-3)
new = TrainerSettings(epochs=30, min_steps=300, optimizer="adamw", lr=1e-3, weight_decay=0.05, lr_schedule="cosine", warmup_steps=30, ema_decay=0.99)
acc = {"old": [], "new": []}; sec = {"old": [], "new": []}
for seed in range(4):
    for name, s in (("old", old), ("new", new)):
        torch.manual_seed(seed)
        m = build_model("cnn", input_shape=data.input_shape, num_classes=10, width=16, embedding_dim=64)
        t = time.perf_counter(); train_model(m, x, y, s, torch.Generator().manual_seed(seed)); sec[name].append(time.perf_counter() - t)
        acc[name].append(evaluate(m, data.test_x, data.test_y).accuracy)
        print(name, seed, round(acc[name][-1], 4), round(sec[name][-1], 1), flush=True)
for name in acc:
    a = torch.tensor(acc[name], dtype=torch.float64)
    print(f"{name}: mean {a.mean():.4f} std {a.std():.4f} seconds {sum(sec[name]):.1f}")
print("time ratio new/old:", sum(sec["new"]) / sum(sec["old"]))
