"""The ``alsweep`` command.

    alsweep strategy=bald                                   one AL run
    alsweep -m strategy=entropy,tod seed=0,1 hydra/launcher=joblib    a sweep
    alsweep experiment=demo                                 a preset (the demo sweeps by itself)
    alsweep leaderboard --experiment demo                   compare the tracked runs
    alsweep strategies [--json]                             list the registry (also: datasets, models)
    alsweep report --experiment demo                        the comparison as HTML/Markdown/PNGs

Everything but ``leaderboard`` and the listings goes to Hydra. Config-group choices that do
not exist (``strategy=bals``) are caught before Hydra starts, so the user gets
one line naming the key, the valid values and the closest one, instead of
Hydra's multi-line search-path report; the same holds for errors found while
validating the composed config inside a job.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiments.errors import USER_ERRORS
from strategies import UnknownNameError

log = logging.getLogger("alsweep")


def find_config_dir() -> Path:
    """conf/ beside the packages in a checkout (editable or on PYTHONPATH), else the installed ``alsweep_conf``."""
    checkout = Path(__file__).resolve().parents[1] / "conf"
    if (checkout / "config.yaml").is_file():
        return checkout
    spec = importlib.util.find_spec("alsweep_conf")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "config.yaml").is_file():
            return Path(location).resolve()
    raise SystemExit(f"alsweep: error: no config tree: neither {checkout} nor the package alsweep_conf exists; reinstall alsweep")


CONFIG_DIR = find_config_dir()
#: Config groups whose options are the yaml files in conf/<group>/.
CHECKED_GROUPS = ("dataset", "model", "strategy", "loop", "trainer", "tracking", "experiment")
_SWEEP_FUNCTION = re.compile(r"^(choice)\((.*)\)$")


def group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def _override_values(value: str) -> list[str] | None:
    """The option names an override asks for, or None when it is a sweep expression we do not parse."""
    match = _SWEEP_FUNCTION.match(value)
    if match:
        value = match.group(2)
    if any(symbol in value for symbol in "()[]{}*$"):
        return None
    return [part.strip().strip("'\"") for part in value.split(",") if part.strip()]


def check_group_overrides(arguments: list[str]) -> None:
    """Raise UnknownNameError for ``group=option`` overrides whose yaml file does not exist."""
    if any(argument.startswith("hydra.searchpath") for argument in arguments):
        return  # options may come from another config source
    for argument in arguments:
        key, separator, value = argument.partition("=")
        key = key.lstrip("+~")
        if not separator or key not in CHECKED_GROUPS:
            continue
        valid = group_options(key)
        for option in _override_values(value) or []:
            if option not in valid:
                raise UnknownNameError(key.replace("_", " "), option, valid, key=key)


# an absolute path: conf/ of the checkout, or the alsweep_conf package of an installed wheel
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    """One Hydra job = one AL run; returns the final test accuracy (for sweepers that optimise)."""
    from experiments.runner import run_experiment  # keeps `alsweep --help` fast

    try:
        return run_experiment(cfg)["final_test_accuracy"]
    except USER_ERRORS as error:
        # one line, not a traceback: the message names the key and what to do
        print(f"alsweep: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "leaderboard":
        from experiments.leaderboard import main as leaderboard_main

        return leaderboard_main(arguments[1:])
    if arguments and arguments[0] in ("strategies", "datasets", "models"):
        from experiments.listings import main as listing_main

        return listing_main(arguments)
    if arguments and arguments[0] == "report":
        from experiments.report import main as report_main

        return report_main(arguments[1:])
    try:
        check_group_overrides(arguments)
    except UnknownNameError as error:
        print(f"alsweep: error: {error}", file=sys.stderr)
        return 2
    sys.argv = [sys.argv[0], *arguments]
    hydra_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
