"""The experiment layer: datasets, models, the active-learning loop, tracking, CLI, leaderboard and report.

It wires `strategies` (which know nothing of Hydra, MLflow or data) to real
runs: `runner.run_experiment` turns one composed Hydra config into one AL run
tracked as one MLflow run; `cli` is the ``alsweep`` command. Reading results
back: `mlflow_reader` turns runs into arrays, `statistics` (pure, no MLflow)
and `comparison` compute the tables, `leaderboard` and `report` show them.
"""
