"""The ``alsweep`` command.

    alsweep strategy=bald                                   one AL run
    alsweep -m strategy=entropy,tod seed=0,1 hydra/launcher=joblib    a sweep
    alsweep experiment=demo                                 a preset (the demo sweeps by itself)
    alsweep leaderboard --experiment demo                   compare the tracked runs
    alsweep strategies [--json]                             list the registry (also: datasets, models)
    alsweep report --experiment demo                        the comparison as HTML/Markdown/PNGs
    alsweep runs --reap                                     mark RUNNING runs whose process died KILLED
    alsweep rerun RUN_ID [--allow-drift]                    run a tracked run again, report drift and sameness

Everything but ``leaderboard`` and the listings goes to Hydra. Config-group choices that do
not exist (``strategy=bals``) are caught before Hydra starts, so the user gets
one line naming the key, the valid values and the closest one, instead of
Hydra's multi-line search-path report; the same holds for errors found while
validating the composed config inside a job.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import logging
import os
import re
import sys
import uuid
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import USER_ERRORS
from experiments.settings import register_configs
from experiments.signals import RunInterrupted, install, stop_file
from experiments.validate import UsageError, validate_command
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
# conf/config.yaml extends the schema in the ConfigStore. Registered at import, not in main(): sweep workers
# (joblib, submitit) compose their job's config in a fresh process that imports this module to unpickle
# hydra_main, and tests compose against CONFIG_DIR after importing it.
register_configs()
#: Config groups whose options are the yaml files in conf/<group>/.
CHECKED_GROUPS = ("dataset", "model", "strategy", "loop", "trainer", "tracking", "experiment")
_SWEEP_FUNCTION = re.compile(r"^(choice)\((.*)\)$")
#: Words that start an ``alsweep`` command instead of a Hydra override.
SUBCOMMANDS = ("leaderboard", "report", "runs", "rerun", "strategies", "datasets", "models")
#: Set by the launching process; a process that sees another pid here is a sweep's worker.
LAUNCHER_PID_ENV = "ALSWEEP_LAUNCHER_PID"
LAUNCH_ID_ENV = "ALSWEEP_LAUNCH_ID"


def launch_id() -> str:
    """A short id of this launch, shared by its worker processes (they inherit the environment)."""
    if LAUNCH_ID_ENV not in os.environ:
        os.environ[LAUNCH_ID_ENV] = uuid.uuid4().hex[:6]
    return os.environ[LAUNCH_ID_ENV]


# used in hydra.run.dir and hydra.sweep.dir: two identical commands in the same second get two folders
OmegaConf.register_new_resolver("alsweep_uid", launch_id, replace=True)


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
    except (OSError, RuntimeError) as error:
        if not _is_disk_error(error):
            raise
        print(
            "alsweep: error: a write failed (disk full or read-only: "
            f"{getattr(error, 'strerror', None) or 'file write failed'}); the run is marked FAILED with its "
            "completed rounds; free space and rerun the same command to resume it", file=sys.stderr,
        )
        raise SystemExit(2) from None
    except RunInterrupted as interrupted:
        print(
            f"alsweep: interrupted by {interrupted}: completed rounds are logged and the run is marked KILLED; "
            "rerun the same command to resume it", file=sys.stderr,
        )
        # a sweep's worker does not exit here: a pool worker that dies makes loky SIGKILL its siblings,
        # which may still be marking their runs KILLED; the launcher waits for it to leave its run
        raise SystemExit(interrupted.exit_code) from None


def _is_disk_error(error: BaseException) -> bool:
    """A full or read-only disk: an OSError with that errno, or torch's writer reporting a failed write."""
    import errno

    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    return any(text in str(error) for text in ("file write failed", "No space left", "iostream error"))


def check_subcommand(arguments: list[str]) -> None:
    """A first word that is neither an override nor an option must be a subcommand."""
    if not arguments:
        return
    first = arguments[0]
    if first.startswith("-") or "=" in first or first in SUBCOMMANDS:
        return
    closest = difflib.get_close_matches(first, SUBCOMMANDS, n=1)
    hint = f" (did you mean '{closest[0]}'?)" if closest else ""
    raise UsageError(
        f"unknown subcommand '{first}'{hint}; valid: {', '.join(SUBCOMMANDS)}, or overrides such as strategy=bald"
    )


def check_leaderboard_arguments(command: str, arguments: list[str]) -> None:
    """The leaderboard's and report's mistakes as one line: a bad argument (first), a missing or dead
    store, an output path that is a file, no sweep."""
    from experiments.tracking import import_mlflow, require_existing_store, resolve_tracking_uri

    if command == "report":
        from experiments.report import build_parser
    else:
        from experiments.leaderboard import build_parser
    known = build_parser().parse_args(arguments)  # exits with one line on a bad argument
    if known.output_dir is not None and known.output_dir.exists() and not known.output_dir.is_dir():
        raise UsageError(f"--output-dir must be a directory; got '{known.output_dir}', an existing file")
    uri = resolve_tracking_uri(known.tracking_uri, Path.cwd())
    require_existing_store(uri)  # reading results must not create an empty store
    if known.sweep == "latest":
        from experiments.leaderboard import latest_sweep_dir

        import_mlflow()
        if latest_sweep_dir(uri, known.experiment) is None:
            raise UsageError(
                f"--sweep latest: experiment '{known.experiment}' has no run from a sweep (-m); "
                "omit --sweep to rank all its runs, or give --sweep DIR"
            )


def _subcommand(command: str, command_main, arguments: list[str], check=None) -> int:
    """Run a subcommand that reads a store or writes files; its mistakes are one line, like a run's."""
    try:
        if check is not None:
            check(arguments)
        return command_main(arguments)
    except (*USER_ERRORS, UsageError) as error:
        print(f"alsweep: error: {_short(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"alsweep: error: {command}: cannot write {error.filename or ''}: {error.strerror}", file=sys.stderr)
        return 2


def read_results(command: str, arguments: list[str]) -> int:
    """``leaderboard`` or ``report``: both read a store and write files."""
    if command == "report":
        from experiments.report import main as command_main
    else:
        from experiments.leaderboard import main as command_main
    return _subcommand(command, command_main, arguments, check=functools.partial(check_leaderboard_arguments, command))


def rerun_command(arguments: list[str]) -> int:
    """``rerun``: a config that no longer validates, or a failed write, is one line like a run's."""
    from experiments.rerun import main as rerun_main

    return _subcommand("rerun", rerun_main, arguments)


def _short(message: str, limit: int = 280) -> str:
    """One line under 300 characters: absolute paths in a message are what makes it long."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int | None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in ("leaderboard", "report"):
        return read_results(arguments[0], arguments[1:])
    if arguments and arguments[0] == "runs":
        from experiments.runs_command import main as runs_main

        return runs_main(arguments[1:])
    if arguments and arguments[0] == "rerun":
        return rerun_command(arguments[1:])
    if arguments and arguments[0] in ("strategies", "datasets", "models"):
        from experiments.listings import main as listing_main

        return listing_main(arguments)
    try:
        check_subcommand(arguments)
        check_group_overrides(arguments)
        # every job of the command, before Hydra creates a folder or the callback a database
        arguments = validate_command(arguments, CONFIG_DIR)
    except (*USER_ERRORS, UsageError) as error:
        print(f"alsweep: error: {_short(str(error))}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - Hydra's composition errors: first line only
        if type(error).__module__.split(".")[0] not in ("hydra", "omegaconf"):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"alsweep: error: {_short(first)}", file=sys.stderr)
        return 2
    # a log file on a full disk must not print a traceback per record: the run reports the failure once
    logging.raiseExceptions = False
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())
    launch_id()
    # the launcher forwards SIGTERM/SIGINT to its workers and waits for them to mark their runs KILLED
    install(forward=True)
    sys.argv = [sys.argv[0], *arguments]
    try:
        hydra_main()
    except RunInterrupted as interrupted:
        stop_file(os.getpid()).unlink(missing_ok=True)
        print(
            f"alsweep: sweep interrupted by {interrupted}: in-flight runs are marked KILLED; "
            "rerun the same command to resume them and run the jobs that did not start", file=sys.stderr,
        )
        return interrupted.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
