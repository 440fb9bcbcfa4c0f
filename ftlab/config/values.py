"""Value parsers: turn a flag's text (or a config file's scalar) into a typed value, or raise ValueError (the
caller says, in words, what is allowed). Light: the standard library only."""
from __future__ import annotations

from typing import Any, Optional, Union

from ftlab.errors import InvalidValue  # the parsers' error type; re-exported for the config's callers

__all__ = ["InvalidValue", "parse_bool", "parse_class_weights", "parse_count", "parse_float", "parse_int",
           "parse_positive_int", "parse_resume", "parse_seeds", "parse_str", "parse_threshold"]


def parse_int(text: Any) -> int:
    if isinstance(text, bool):
        raise ValueError
    if isinstance(text, int):
        return text
    if isinstance(text, float) and text.is_integer():
        return int(text)
    return int(str(text).strip())


def parse_positive_int(text: Any) -> int:
    value = parse_int(text)
    if value < 1:
        raise ValueError
    return value


def parse_float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError
    return float(text)


def parse_bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def parse_resume(text: Any) -> Union[bool, str]:
    """--resume: true, false, or auto (continue when a complete checkpoint exists, else start)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    return parse_bool(text)


# Flags that take an optional value: `--lora_key` alone means true, `--lora_key false` says it.
OPTIONAL_VALUE_PARSERS = (parse_bool, parse_resume)


def parse_str(text: Any) -> str:
    return str(text)


def parse_class_weights(text: Any) -> str:
    """--class_weights: none, balanced, or one number > 0 per class ('1,4'; a list in a config file), written back
    in one canonical form so that equal weights make one configuration."""
    items = text if isinstance(text, (list, tuple)) else str(text).strip().lower().split(",")
    if len(items) == 1 and str(items[0]).strip() in ("none", "balanced"):
        return str(items[0]).strip()
    weights = []
    for item in items:
        try:
            weight = parse_float(item)
        except (TypeError, ValueError):
            raise InvalidValue(f"{str(item).strip()!r} is not a number (--class_weights takes none, balanced or "
                               f"comma-separated numbers > 0)") from None
        if not 0 < weight < float("inf"):
            raise InvalidValue(f"{str(item).strip()!r}: a class weight must be a number > 0")
        weights.append(weight)
    return ",".join(format(weight, "g") for weight in weights)


def parse_threshold(text: Any) -> Optional[float]:
    """--threshold: 'tune' (None: tuned per label on validation) or a probability strictly between 0 and 1."""
    if text is None or str(text).strip().lower() in ("tune", "none"):
        return None
    value = parse_float(text)
    if not 0 < value < 1:
        raise ValueError
    return value



def parse_seeds(text: Any) -> list[int]:
    """--seeds: comma-separated integers ('1,2,3'), or a list of them in a config file; each once."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    seeds = []
    for item in items:
        try:
            seeds.append(parse_int(item))
        except (TypeError, ValueError):
            raise InvalidValue(f"{str(item).strip()!r} is not an integer (--seeds takes comma-separated integers, "
                               f"e.g. 1,2,3)") from None
    if not seeds:
        raise InvalidValue("no seed given (--seeds takes comma-separated integers, e.g. 1,2,3)")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise InvalidValue(f"seed {repeated[0]} is given twice (each seed is one run)")
    return seeds


def parse_count(text: Any) -> Optional[int]:
    """A sample count: a positive integer, or 'all'."""
    if text is None or str(text).strip().lower() in ("all", "none"):
        return None
    return parse_int(text)

