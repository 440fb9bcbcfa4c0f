"""The search space of `main.py search`: which train flags vary, and over what.

    --space NAME=LOW..HIGH        a float range (an integer range for integer flags such as lora_r)
    --space NAME=LOW..HIGH:log    the same, sampled on a log scale
    --space NAME=V1,V2,...        choices: any numeric, true/false or choice flag (optimizer=adamw,sgd)

A YAML file (--space_file) maps flag names to the same right-hand sides, or to lists of choices. Every bound and
choice is parsed and checked by the train flag's own rule in ftlab.config.FIELDS, so a space cannot propose a value
that `train` would refuse. This module imports neither optuna nor torch: a malformed space fails at once.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ftlab.config import FIELDS
from ftlab.errors import ConfigError

SYNTAX = "NAME=LOW..HIGH, NAME=LOW..HIGH:log or NAME=V1,V2,..."
# The train flags a search refuses, and why (for the error message). NOT_FOR_SEARCH: the search sets them itself
# or they make no sense for trials: refused as fixed flags and as searched ones. NOT_SEARCHABLE adds the flags
# that may be fixed but not searched: they are not hyperparameters, and searching them would change what a trial
# measures (the objective itself) or what a trial directory is.
NOT_FOR_SEARCH = {
    "output_dir": "each trial runs in <the search's --output_dir>/trial-<number>",
    "resume": "a trial is never resumed (a failed one is re-run afresh)",
    "eval_only": "trials must train",
    "save_adapter": "every trial would write the same adapter; retrain best_config.yaml with --save_adapter",
}
NOT_SEARCHABLE = {
    **NOT_FOR_SEARCH,
    "metric_for_best": "it is the search's objective",
    "overwrite_output_dir": "every trial has its own directory",
}
_INTEGER_TYPES = ("int", "Optional[int]")
_NUMERIC_TYPES = (*_INTEGER_TYPES, "float", "Optional[float]")


@dataclass(frozen=True)
class Param:
    """One searched flag: a range (low, high, log; integer for integer flags) or a tuple of choices."""
    name: str
    low: Any = None
    high: Any = None
    log: bool = False
    integer: bool = False
    choices: tuple = ()

    def suggest(self, trial: Any) -> Any:
        """This trial's value, from the study's sampler (an optuna.Trial)."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        """The canonical spec (what a study stores, so a continuation can be checked against it)."""
        if self.choices:
            return f"{self.name}={','.join(flag_value(choice) for choice in self.choices)}"
        return f"{self.name}={self.low!r}..{self.high!r}{':log' if self.log else ''}"


def _field(name: str, where: str) -> Any:
    if name not in FIELDS:
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: {name!r} is not a train flag{hint}")
    group, f = FIELDS[name]
    if name in NOT_SEARCHABLE:
        raise ConfigError(f"{where}: --{name} cannot be searched: {NOT_SEARCHABLE[name]}")
    searchable = f.type in _NUMERIC_TYPES or f.type == "bool" or f.metadata["choices"]
    if group == "tracking" or not searchable:
        raise ConfigError(f"{where}: --{name} cannot be searched (only numeric, true/false and choice flags)")
    return f


def _value(f: Any, name: str, text: Any, where: str) -> Any:
    """One bound or choice, parsed and checked as `train` would check --NAME TEXT."""
    meta = f.metadata
    try:
        value = meta["parse"](text)
    except (TypeError, ValueError):
        value = None
    if value is None or (meta["check"] is not None and not meta["check"](value)):
        raise ConfigError(f"{where}: {str(text).strip()!r} is not {meta['allowed'] or 'valid'} (--{name})")
    return value


def _range(name: str, f: Any, text: str, where: str) -> Param:
    bounds, _, scale = text.partition(":")
    if scale.strip() not in ("", "log"):
        raise ConfigError(f"{where}: unknown scale {scale.strip()!r} (only ':log'; write {SYNTAX})")
    if f.type not in _NUMERIC_TYPES:
        example = ",".join(flag_value(c) for c in (f.metadata["choices"] or (True, False))[:2])
        raise ConfigError(f"{where}: --{name} takes choices, not a range (e.g. {name}={example})")
    low_text, _, high_text = bounds.partition("..")
    low, high = (_value(f, name, part, where) for part in (low_text, high_text))
    if low >= high:
        raise ConfigError(f"{where}: LOW must be below HIGH")
    log = scale.strip() == "log"
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs LOW > 0")
    integer = f.type in _INTEGER_TYPES
    return Param(name, low=int(low) if integer else float(low), high=int(high) if integer else float(high),
                 log=log, integer=integer)


def _choices(name: str, f: Any, items: list[Any], where: str) -> Param:
    values = tuple(_value(f, name, item, where) for item in items)
    if len(values) < 2:
        raise ConfigError(f"{where}: give at least two choices (one value is a fixed flag: --{name} VALUE)")
    if len(set(values)) < len(values):
        raise ConfigError(f"{where}: a choice is repeated")
    return Param(name, choices=values)


def parse_spec(spec: str, where: Optional[str] = None) -> Param:
    """One --space entry: NAME=LOW..HIGH[:log] or NAME=V1,V2,..."""
    where = where or f"--space {spec!r}"
    name, sep, rhs = spec.partition("=")
    name, rhs = name.strip(), rhs.strip()
    if not sep or not name or not rhs:
        raise ConfigError(f"{where}: write {SYNTAX}")
    f = _field(name, where)
    if ".." in rhs:
        return _range(name, f, rhs, where)
    return _choices(name, f, rhs.split(","), where)


def read_space_file(path: str) -> dict[str, Param]:
    """A YAML mapping of flag name -> spec right-hand side ('1e-5..1e-3:log') or list of choices."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--space_file {path}: no such file")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"--space_file {path}: cannot parse: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--space_file {path}: expected a mapping of flag names to ranges or lists of choices")
    space = {}
    for name, value in raw.items():
        where = f"--space_file {path}: {name}"
        if isinstance(value, list):
            space[str(name)] = _choices(str(name), _field(str(name), where), value, where)
        elif isinstance(value, str):
            space[str(name)] = parse_spec(f"{name}={value}", where)
        else:
            raise ConfigError(f"{where}: {value!r} is a fixed value (put it in the train flags or --config); a "
                              f"space entry is 'LOW..HIGH', 'LOW..HIGH:log' or a list of choices")
    return space


def build_space(specs: list[str], space_file: Optional[str]) -> dict[str, Param]:
    """The file's entries, then each --space (which replaces a file entry of the same name)."""
    space = read_space_file(space_file) if space_file else {}
    seen: set[str] = set()
    for spec in specs:
        param = parse_spec(spec)
        if param.name in seen:
            raise ConfigError(f"--space {spec!r}: {param.name} is given twice")
        seen.add(param.name)
        space[param.name] = param
    if not space:
        raise ConfigError(f"nothing to search: give --space {SYNTAX} (repeatable) or --space_file FILE")
    return space


def flag_value(value: Any) -> str:
    """A value as train's command line spells it (floats in full precision)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def show_params(params: dict[str, Any]) -> str:
    """Sampled values for the console: name=value, floats to 4 significant digits."""
    return ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in params.items())


def param_flags(params: dict[str, Any]) -> list[str]:
    """--NAME VALUE for each sampled parameter."""
    return [item for name, value in params.items() for item in (f"--{name}", flag_value(value))]
