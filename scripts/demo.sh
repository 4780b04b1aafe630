#!/usr/bin/env bash
# Quick start, part 1: set up, run the demo sweep (all nine strategies x 3 seeds on
# Fashion-MNIST, ~10.5 minutes on 2 CPU cores), then print its leaderboard (with 95% CIs and
# paired p-values against random) and write leaderboard/demo/{leaderboard.csv,learning_curves.png}
# and the report report/demo/{report.html,report.md,*.png}. Extra arguments go to the sweep,
# e.g. scripts/demo.sh device=cuda
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
.venv/bin/alsweep experiment=demo "$@"
.venv/bin/alsweep leaderboard --experiment demo --sweep latest
.venv/bin/alsweep report --experiment demo --sweep latest
