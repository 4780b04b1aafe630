"""Check a whole ``alsweep`` command before Hydra starts: every job of a sweep, in seconds.

`validate_command` runs in the launching process, before Hydra creates an
output folder or the tracking callback creates ``mlflow.db``. It turns the
mistakes Hydra reports in a multi-line block (an unknown key without ``+``, a
misspelt launcher, a comma list without ``-m``, an empty sweep value, ``-m``
with ``--info``, a value of the wrong type for the config schema of
`experiments.settings`, a yaml key that schema lacks) into one line naming the
key, the allowed type or the closest valid name, and the fix. Then it composes the config of every job of the sweep and checks it as a
job would (`experiments.runner.check_config`: keys, values, strategy
parameter types, needs against the model, sizes against the dataset), so a
typo in job 17 stops the sweep before job 1 trains. Last, it checks once for
the whole sweep that the tracking store can be reached and the launch folder
can be written.

It also keeps a preset's keys from leaking into a group the user chose
himself: ``experiment=smoke model=cnn`` drops the preset's ``model.hidden``
(an MLP key) instead of failing on a key the user never set.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from experiments.errors import ConfigError, TrackingError

#: Hydra options that take no value and change nothing we check.
_FLAG_OPTIONS = ("-m", "--multirun")
_INFO_OPTIONS = ("-i", "--info", "-c", "--cfg", "--resolve", "-p", "--package", "--help", "-h", "--hydra-help",
                 "--version", "--shell-completion", "-sc", "--run", "-r", "--experimental-rerun")
MAX_JOBS_CHECKED = 5000


class UsageError(ValueError):
    """A command line alsweep cannot run; the message is the one line shown."""


def _closest(name: str, options) -> str:
    found = difflib.get_close_matches(name, [str(o) for o in options], n=1, cutoff=0.5)
    return f" (did you mean '{found[0]}'?)" if found else ""


def _short_list(options, limit: int = 12) -> str:
    options = [str(o) for o in options]
    shown = ", ".join(options[:limit])
    return shown + (", ..." if len(options) > limit else "") if options else "none"


def _group_options(config_dir: Path, group: str) -> list[str]:
    if group.startswith("hydra/"):
        from hydra.core.global_hydra import GlobalHydra

        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    return sorted(path.stem for path in (config_dir / group).glob("*.yaml"))


def _is_group(config_dir: Path, key: str) -> bool:
    return key.startswith("hydra/") or (config_dir / key).is_dir()


def _check_override_syntax(overrides: list[str], multirun: bool, config_dir: Path) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as error:
            reason = str(error).strip().splitlines()[0][:120]
            raise UsageError(f"cannot read the override '{text}': {reason}; write key=value, e.g. loop.rounds=5") from None
        key = override.key_or_group
        if override.is_sweep_override() and not multirun:
            raise UsageError(
                f"'{text}' gives {key} several values; add -m (--multirun) to run one job per value"
            )
        value = override.value()
        empty = value == "" or (isinstance(value, list) and "" in value)
        if empty and _is_group(config_dir, key) and not override.is_delete():
            raise UsageError(f"{key} must be one of {_short_list(_group_options(config_dir, key))}; got '' (empty)")
        if key.startswith("hydra/") and not override.is_delete():
            valid = _group_options(config_dir, key)
            values = value if isinstance(value, list) else [value]
            for option in values:
                if isinstance(option, str) and option not in valid:
                    raise UsageError(
                        f"{key} must be one of {_short_list(valid)}; got '{option}'{_closest(option, valid)}"
                    )
        parsed.append(override)
    return parsed


def _check_keys_exist(base, overrides: list[str], config_dir: Path) -> None:
    """A plain ``key=value`` must name a key of the composed config (``+key=value`` adds one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_add() or override.is_force_add() or override.is_delete() or "/" in key:
            continue
        if key.startswith("hydra.") or _is_group(config_dir, key):
            continue
        parts = key.split(".")
        node = base
        for depth, part in enumerate(parts):
            if not OmegaConf.is_dict(node) or part not in node:
                parent = ".".join(parts[:depth])
                siblings = list(node.keys()) if OmegaConf.is_dict(node) else []
                where = f"in '{parent}'" if parent else "at the top level"
                raise UsageError(
                    f"unknown key '{key}'{_closest(part, siblings)}; keys {where}: {_short_list(siblings, 10)}; "
                    f"to add a new key write +{key}=..."
                )
            node = node[part]


def _preset_leaks(arguments: list[str], config_dir: Path) -> list[str]:
    """``~group.key`` deletions for keys a preset sets in a group whose option the user chose."""
    from experiments.settings import GROUP_SCHEMAS, field_names

    chosen = {}
    preset = None
    for argument in arguments:
        key, separator, value = argument.partition("=")
        if not separator:
            continue
        if key == "experiment":
            preset = value
        elif (config_dir / key).is_dir() and "," not in value:
            chosen[key] = value
    if preset is None or not (config_dir / "experiment" / f"{preset}.yaml").is_file():
        return []
    preset_values = OmegaConf.to_container(OmegaConf.load(config_dir / "experiment" / f"{preset}.yaml"))
    deletions = []
    for group, option in chosen.items():
        option_file = config_dir / group / f"{option}.yaml"
        preset_node = preset_values.get(group)
        if not isinstance(preset_node, Mapping) or not option_file.is_file():
            continue
        # the option's keys are its yaml's plus those of the schema it extends (the yaml omits schema defaults)
        option_keys = set(OmegaConf.to_container(OmegaConf.load(option_file)) or {})
        if group in GROUP_SCHEMAS:
            option_keys |= set(field_names(GROUP_SCHEMAS[group]))
        explicit = {argument.partition("=")[0].lstrip("+~") for argument in arguments}
        for key in preset_node:
            if key not in option_keys and f"{group}.{key}" not in explicit:
                deletions.append(f"~{group}.{key}")
    return deletions


def _describe_type(declared) -> str:
    """``int | None`` -> 'an integer or null': the allowed values of a schema field, in the words of parse_settings."""
    import types
    import typing

    if isinstance(declared, types.UnionType) or typing.get_origin(declared) is typing.Union:
        members = [member for member in typing.get_args(declared) if member is not type(None)]
        described = " or ".join(_describe_type(member) for member in members)
        return described + (" or null" if len(members) < len(typing.get_args(declared)) else "")
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if declared in names:
        return names[declared]
    if typing.get_origin(declared) is dict or declared is dict:
        return "a mapping"
    return f"of type {getattr(declared, '__name__', declared)}"


def schema_error_line(error: BaseException) -> str | None:
    """One line for what the config schema rejects, or None when ``error`` is not such a rejection.

    OmegaConf's ValidationError (reached through Hydra's 'Error merging override ...') spans
    several lines (value, full_key, reference_type, object_type); this keeps the key, the type the
    schema declares for it and the value given: ``loop.rounds must be an integer; got 'abc'``.
    A yaml key the schema lacks (ConfigKeyError) becomes ``unknown key 'trainer.epochz' (did you
    mean 'epochs'?) in trainer/bad.yaml; allowed in 'trainer': ...``.
    """
    import dataclasses
    import re

    from omegaconf.errors import ConfigKeyError, ValidationError

    from experiments.settings import field_names, field_type

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, (ValidationError, ConfigKeyError)):
        cause = cause.__cause__ or cause.__context__
    if cause is None or not cause.full_key:
        return None
    if isinstance(cause, ConfigKeyError):
        if not dataclasses.is_dataclass(cause.object_type):
            return None
        # a yaml key the schema does not declare; Hydra's first line names the yaml it came from
        source = re.match(r"In '([^']+)'", str(error))
        parent = cause.full_key.rpartition(".")[0]
        allowed = field_names(cause.object_type)
        return (
            f"unknown key '{cause.full_key}'{_closest(str(cause.key), allowed)}"
            + (f" in {source.group(1)}.yaml" if source else "")
            + (f"; allowed in '{parent}': " if parent else "; allowed at the top level: ") + ", ".join(allowed)
        )
    declared = field_type(cause.object_type, str(cause.key)) if isinstance(cause.object_type, type) else None
    allowed = _describe_type(declared) if declared is not None else "of the schema's type"
    return f"{cause.full_key} must be {allowed}; got {cause.value!r}"


def _compose(compose, overrides: list[str]):
    """Hydra's compose, with a value of the wrong type (``loop.rounds=abc``) as one ConfigError line."""
    try:
        return compose("config", overrides=overrides)
    except Exception as error:  # noqa: BLE001 - Hydra wraps the ValidationError in its own exception types
        line = schema_error_line(error)
        if line is None:
            raise
        raise ConfigError(line) from None


def _check_launch_folder(container: Mapping, launch_dir: Path) -> None:
    if not os.access(launch_dir, os.W_OK):
        raise UsageError(
            "the working directory is read-only: alsweep writes outputs/ and mlflow.db where it is launched; "
            "cd to a writable folder, or set hydra.run.dir=/ABS/DIR and tracking.uri=sqlite:////ABS/mlflow.db"
        )


def _check_tracking(container: Mapping, launch_dir: Path, checked: set) -> None:
    from experiments.tracking import probe_store, resolve_tracking_uri, sqlite_path

    tracking = container.get("tracking") or {}
    if not tracking.get("enabled", True):
        return
    uri = resolve_tracking_uri(str(tracking.get("uri")), launch_dir)
    if uri in checked:
        return
    checked.add(uri)
    probe_store(uri)  # an unreachable server: one line, in seconds, once for the whole sweep
    path = sqlite_path(uri)
    if path is not None:
        try:
            # the store's folder would be created by the first job anyway; root ignores permission bits
            path.parent.mkdir(parents=True, exist_ok=True)
            writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
        except OSError:
            writable = False
        if not writable:
            raise TrackingError(
                f"tracking.uri: cannot write the SQLite store '{path.name}' in {path.parent} (read-only); "
                "set tracking.uri=sqlite:////WRITABLE/PATH/mlflow.db or tracking=disabled"
            )


def validate_command(arguments: list[str], config_dir: Path) -> list[str]:
    """Check every job of the command; return the arguments to give Hydra (preset leaks removed).

    Raises UsageError / ConfigError / TrackingError / UnknownNameError with one line.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra

    from experiments.runner import check_config
    from experiments.settings import register_configs

    register_configs()
    multirun = any(a in _FLAG_OPTIONS for a in arguments)
    options = [a for a in arguments if a.startswith("-") and a not in _FLAG_OPTIONS]
    if multirun and any(a in ("-i", "--info") or a.startswith("--info=") for a in arguments):
        raise UsageError("--info describes one run; drop -m (--multirun) to see it for one job of the sweep")
    if options:
        return arguments  # --cfg, --help, -cd ...: Hydra's own business, nothing runs
    overrides = [a for a in arguments if a not in _FLAG_OPTIONS]
    overrides = overrides + _preset_leaks(overrides, config_dir)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            parsed = _check_override_syntax(overrides, multirun, config_dir)
            if multirun:
                (jobs,) = BasicSweeper.split_arguments(parsed, None) or [[overrides]]
            else:
                jobs = [overrides]
            if len(jobs) > MAX_JOBS_CHECKED:
                jobs = jobs[:MAX_JOBS_CHECKED]
            groups_only = [o for o in jobs[0] if "/" in o.split("=")[0] or _is_group(config_dir, o.split("=")[0].lstrip("+~"))]
            searchpath = [o for o in jobs[0] if o.startswith("hydra.searchpath")]  # plugins' config groups
            base = _compose(compose, [o for o in groups_only if not o.startswith("hydra")] + searchpath)
            _check_keys_exist(base, [o for o in jobs[0] if not o.startswith(("hydra.", "hydra/"))], config_dir)
            caches: dict = {}
            checked_stores: set = set()
            launch_dir = Path.cwd()
            for job in jobs:
                job_overrides = [o for o in job if not o.startswith(("hydra.", "hydra/"))]
                cfg = _compose(compose, job_overrides + searchpath)
                container = check_config(cfg, caches)
                _check_launch_folder(container, launch_dir)
                _check_tracking(container, launch_dir, checked_stores)
    finally:
        GlobalHydra.instance().clear()
    return [a for a in arguments if a in _FLAG_OPTIONS] + overrides


__all__ = ["UsageError", "ConfigError", "validate_command"]
