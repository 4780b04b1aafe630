"""The experiment layer: datasets, models, the active-learning loop, tracking, CLI and leaderboard.

It wires `strategies` (which know nothing of Hydra, MLflow or data) to real
runs: `runner.run_experiment` turns one composed Hydra config into one AL run
tracked as one MLflow run; `cli` is the ``alsweep`` command.
"""
