"""Building a configuration: the command line (argparse over the schema's fields, and the seed projects' alias
flags), the YAML/JSON file of --config, a run's saved config read back, and the defaults derived from other values.

We build the argparse parser ourselves rather than use transformers' HfArgumentParser because that one imports
torch (~2 s): a mistyped flag must fail in well under a second, before anything heavy loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Any, Callable, Collection, Optional

from ftlab import methods
from ftlab.config.rules import settle_method_flags, validate
from ftlab.config.schema import FIELDS, GROUP_CLASSES, IDENTITY_FIELDS, NO_LEGACY, WANDB_MODES, Config
from ftlab.config.values import OPTIONAL_VALUE_PARSERS, InvalidValue, parse_bool, parse_positive_int
from ftlab.errors import ConfigError

# The seed projects chose the method with `--task fft|cls|lora`, `--lora` and `--q_lora`: the methods' own aliases
# and legacy flags (ftlab.methods).
LEGACY_FLAGS = {method.legacy_flag: method.name for method in methods.METHODS.values() if method.legacy_flag}
TASKS = tuple(sorted({*methods.registry.ALIASES, *LEGACY_FLAGS.values()}))


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; users asked for one line naming the bad value."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        return super().parse_known_args(None if args is None else self._attach_dash_values(list(args)), namespace)

    def _attach_dash_values(self, args: list[str]) -> list[str]:
        """`--sizes -10,100` as `--sizes=-10,100`: argparse takes a value that starts with '-' and is not a plain
        negative number for an option and says "expected one argument", which hides the bad value (the flag's own
        check then names it)."""
        takes_value = {option for action in self._actions if action.nargs is None and action.option_strings
                       for option in action.option_strings}
        out: list[str] = []
        for arg in args:
            if out and out[-1] in takes_value and arg.startswith("-") and not arg.startswith("--") \
                    and arg not in self._option_string_actions and len(arg) > 1:
                out[-1] = f"{out[-1]}={arg}"
                continue
            out.append(arg)
        return out


def _argparse_type(name: str, parse: Callable[[Any], Any], allowed: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except InvalidValue as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed or 'valid'}") from None
    convert.__name__ = name
    return convert


POSITIVE_INT = _argparse_type("positive_int", parse_positive_int, "an integer >= 1")
OPTIONAL_BOOL = _argparse_type("bool", parse_bool, "true or false")


def shown_default(f: dataclasses.Field) -> str:
    """A field's default as one would type it, for the help text; "" where the help says the default itself or there
    is none to show (None: unset, the help says what that means)."""
    if "(default" in f.metadata["help"] or f.default is None:
        return ""
    value = f.default
    text = str(value).lower() if isinstance(value, bool) else format(value, "g") if isinstance(value, float) \
        else str(value)
    return f" (default: {text})"


def build_parser(prog: str = "main.py", shown: Optional[Collection[str]] = None,
                 description: str = "Fine-tune a transformer encoder for text classification.",
                 usage: Optional[str] = None) -> OneLineParser:
    """The train flags. `shown`: the options whose help is printed (a command that uses only some of them, such as
    baseline, still accepts the others, so that one set of flags can serve all the runs of a study); None: all,
    with the seed projects' aliases."""
    # Defaults are suppressed so that we can tell flags the user typed from values they left alone; the
    # dataclass defaults apply later, under the config file.
    parser = OneLineParser(prog=prog, argument_default=argparse.SUPPRESS, description=description,
                           usage=usage or f"{prog} [flags]")
    parser.add_argument("--config", help="YAML or JSON file of options; flags given here override it.")
    for group_name, cls in GROUP_CLASSES.items():
        group = parser.add_argument_group(group_name)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            hidden = shown is not None and f.name not in shown
            kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if hidden else meta["help"] + shown_default(f)}
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            elif meta["parse"] in OPTIONAL_VALUE_PARSERS:
                kwargs.update(nargs="?", const=True, type=_argparse_type(f.name, meta["parse"], meta["allowed"]))
            else:
                kwargs["type"] = _argparse_type(f.name, meta["parse"], meta["allowed"])
            group.add_argument(f"--{f.name}", **kwargs)
    aliases = parser.add_argument_group("aliases from the seed projects")

    def alias_help(text: str) -> str:
        return argparse.SUPPRESS if shown is not None else text

    # As the seed projects' READMEs write them: `--lora True` as well as `--lora` (`--lora false` sets nothing).
    for flag, method in LEGACY_FLAGS.items():
        aliases.add_argument(f"--{flag}", dest=f"alias_{flag}", nargs="?", const=True, type=OPTIONAL_BOOL,
                             help=alias_help(f"= --method {method}"))
    aliases.add_argument("--lora_rank", dest="alias_lora_rank", type=POSITIVE_INT, help=alias_help("= --lora_r"))
    # transformers' TrainingArguments name; one flag, two spellings.
    aliases.add_argument("--metric_for_best_model", dest="alias_metric_for_best_model",
                         choices=FIELDS["metric_for_best"][1].metadata["choices"],
                         help=alias_help("= --metric_for_best"))
    aliases.add_argument("--task", dest="alias_task", choices=TASKS,
                         help=alias_help(", ".join(f"{task} = --method {methods.canonical(task)}" for task in TASKS)))
    return parser


def _from_aliases(given: dict[str, Any]) -> dict[str, Any]:
    """Fold alias flags into canonical keys; contradicting a canonical flag is an error, not a silent choice."""
    resolved: dict[str, Any] = {}
    chosen = []
    for flag, method in LEGACY_FLAGS.items():
        if given.pop(f"alias_{flag}", False):
            chosen.append((f"--{flag}", method))
    if "alias_task" in given:
        task = given.pop("alias_task")
        chosen.append((f"--task {task}", methods.canonical(task)))
    if "method" in given:
        chosen.append((f"--method {given['method']}", given["method"]))
    if len({m for _, m in chosen}) > 1:
        raise ConfigError("conflicting method flags: " + ", ".join(flag for flag, _ in chosen))
    if chosen:
        resolved["method"] = chosen[0][1]
    if "alias_metric_for_best_model" in given:
        metric = given.pop("alias_metric_for_best_model")
        if given.get("metric_for_best", metric) != metric:
            raise ConfigError(f"conflicting flags: --metric_for_best_model {metric} and --metric_for_best "
                              f"{given['metric_for_best']}")
        resolved["metric_for_best"] = metric
    if "alias_lora_rank" in given:
        rank = given.pop("alias_lora_rank")
        if "lora_r" in given and given["lora_r"] != rank:
            raise ConfigError(f"conflicting flags: --lora_rank {rank} and --lora_r {given['lora_r']}")
        resolved["lora_r"] = rank
    return resolved


def flatten_sections(values: Any) -> dict[str, Any]:
    """{key: value} from a config as a run saves it (sections model:, data:, … as `Config.to_dict` writes them) or
    as users write it (flat keys, or both mixed); anything but a mapping gives {}."""
    if not isinstance(values, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in GROUP_CLASSES and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def read_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON file into flat {key: value}. Group sections (model:, data:, …) as written by a run are
    accepted too, so a run's saved config.yaml reproduces it."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml
            raw = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise different types; both mean the same to the user
        raise ConfigError(f"--config {path}: cannot parse: {str(exc).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option names to values")
    flat = flatten_sections(raw)
    for key in flat:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"--config {path}: unknown key {key!r}{hint}")
    parsed = {}
    for key, value in flat.items():
        meta = FIELDS[key][1].metadata
        try:
            parsed[key] = None if value is None else meta["parse"](value)
        except InvalidValue as exc:
            raise ConfigError(f"--config {path}: {key}: {exc}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"--config {path}: {key}: {value!r} is not {meta['allowed']}") from None
    return parsed


def _one_seed_setting(file_values: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """--seed and --seeds together are an error; a flag replaces the file's setting of either (a run's saved
    config.yaml names its seed, and `--config it --seeds 1,2,3` repeats it over seeds)."""
    for source, values in (("flags", given), ("--config file", file_values)):
        if "seed" in values and values.get("seeds") is not None:
            raise ConfigError(f"--seed and --seeds both given ({source}): use --seeds alone to run several seeds")
    if "seed" in given or "seeds" in given:
        file_values = {key: value for key, value in file_values.items() if key not in ("seed", "seeds")}
    return file_values


def parse_config(argv: list[str], foreign_flags: str = "error") -> Config:
    """Defaults <- --config file <- flags; validated; derived defaults filled. Only the values: the run plan
    (ftlab.runs.plan.plan_run) adds what needs the file system, the dataset and the model. foreign_flags: what a
    typed method flag that the method does not read does, "error" or "ignore" (ftlab.config.rules)."""
    given = vars(build_parser().parse_args(argv))
    file_values = read_config_file(given.pop("config")) if "config" in given else {}
    file_values = _one_seed_setting(file_values, given)
    alias_values = _from_aliases(given)
    cfg = config_from_values({**file_values, **given, **alias_values})
    typed = set(given) | set(alias_values)
    settle_method_flags(cfg, typed, typed | set(file_values), foreign_flags)
    return resolve_defaults(validate(cfg))


def flags_for_method(argv: list[str], method: str) -> list[str]:
    """`argv` without the method flags (and their values) that `method` does not read: for a command that hands one
    set of flags to several methods and starts each run as its own process (bench)."""
    owners, reader = methods.flag_owners(), methods.get(method)
    kept: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        name, has_value, _ = arg[2:].partition("=")
        if not arg.startswith("--") or name not in owners or reader.reads(name):
            kept.append(arg)
            continue
        optional = FIELDS[name][1].metadata["parse"] in OPTIONAL_VALUE_PARSERS  # `--lora_mlp` alone means true
        if not has_value and index < len(argv) and not (optional and argv[index].startswith("-")):
            index += 1  # its value goes with it
    return kept


def explicit_options(argv: list[str]) -> set[str]:
    """The option names that the command line itself sets (aliases folded in; --config's keys not), for callers
    that must not silently override a value the user typed."""
    given = vars(build_parser().parse_args(argv))
    given.pop("config", None)
    aliases = _from_aliases(given)  # takes the alias_* entries out of `given`
    return set(given) | set(aliases)


def config_from_record(sections: dict[str, Any]) -> Config:
    """A record's saved config (sections as `Config.to_dict` writes them) on top of today's defaults, the derived
    ones filled as a run fills them: records written before a field existed get its default, so their group is
    the one a run of the same settings gets today, or, where the new default changed what runs do (pooling,
    truncation, attention dropout), the field's `legacy` value, so that they do not join today's default runs.
    Keys this version does not know are ignored."""
    values = {key: None if value is None else FIELDS[key][1].metadata["parse"](value)
              for key, value in flatten_sections(sections).items() if key in FIELDS}
    for name, (_, f) in FIELDS.items():
        if name not in values and f.metadata["legacy"] is not NO_LEGACY:
            values[name] = f.metadata["legacy"]
    return resolve_defaults(config_from_values(values))


def resolve_defaults(cfg: Config) -> Config:
    """Fill values that depend on other values, so the saved config says exactly what ran."""
    if cfg.optim.lr is None:
        cfg.optim.lr = methods.get(cfg.method.method).default_lr
    if cfg.speed.pad_multiple is None:
        cfg.speed.pad_multiple = 64 if cfg.speed.torch_compile else 8
    # W&B's own variables are honoured (cluster templates set WANDB_MODE=offline); flags win over them.
    cfg.tracking.wandb_project = cfg.tracking.wandb_project or os.environ.get("WANDB_PROJECT") or None
    if cfg.tracking.wandb_mode is None:
        env_mode = os.environ.get("WANDB_MODE", "").replace("dryrun", "offline")
        if not cfg.tracking.wandb_project:
            cfg.tracking.wandb_mode = "disabled"
        else:
            cfg.tracking.wandb_mode = env_mode if env_mode in WANDB_MODES else "online"
    return cfg


def config_from_values(values: dict[str, Any]) -> Config:
    cfg = Config()
    for key, value in values.items():
        group, _ = FIELDS[key]
        setattr(getattr(cfg, group), key, value)
    return cfg


# What a run's reproducing command names besides its identity: the seed (seeds are one configuration group, but a
# card describes one run) and whether it merged (what it saved).
_REPRODUCED = (IDENTITY_FIELDS | {"seed", "merge"}) - {"seeds"}


def command_line(cfg: Config) -> list[str]:
    """The train flags that repeat a run of `cfg`: its method, then every option that decides the trained model
    (and its seed) set to a value other than the default of a run of that method, in the schema's order.
    parse_config reads them back to the same configuration."""
    baseline = resolve_defaults(config_from_values({"method": cfg.method.method}))
    flags = ["--method", cfg.method.method]
    for name, (group, _) in FIELDS.items():
        value = getattr(getattr(cfg, group), name)
        if name not in _REPRODUCED or name == "method" or value == getattr(getattr(baseline, group), name) \
                or value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        flags += [f"--{name}", text]
    return flags
