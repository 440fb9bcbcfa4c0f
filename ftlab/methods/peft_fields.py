"""The fields of a PEFT method's config class, read from peft's source without importing peft, and `--peft_args`
checked against them.

Importing peft imports torch and transformers (several seconds, tens on a busy machine), and a mistyped key must
fail in well under a second, so the config class's dataclass fields (name, annotation, default) are read from its
source file with `ast`. tests/test_method_registry.py holds them equal to `dataclasses.fields` of the imported class
for every method, so the two cannot drift apart with a new peft.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ftlab.errors import ConfigError, InvalidValue

# Fields of PEFT's base config classes: the framework's, not the method's hyperparameters.
FRAMEWORK_BASES = ("PeftConfigMixin", "PeftConfig")
NONE_WORDS = ("none", "null", "~")


@dataclass(frozen=True)
class PeftField:
    name: str
    annotation: str  # as written in peft's source, e.g. "Optional[Union[list[str], str]]"
    default: Any  # the literal default; MISSING where it is computed (default_factory or an expression)


MISSING = object()


@functools.lru_cache(maxsize=None)
def _peft_root() -> Path:
    spec = importlib.util.find_spec("peft")  # locates the package without running its __init__
    if spec is None or spec.origin is None:
        raise ConfigError("PEFT is not installed: pip install peft")
    return Path(spec.origin).parent


def _module_file(module: str) -> Optional[Path]:
    parts = module.split(".")
    if parts[0] != "peft":
        return None
    base = _peft_root().joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "config.py", base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _default(value: Optional[ast.expr]) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        value = next((kw.value for kw in value.keywords if kw.arg == "default"), None)
        if value is None:
            return MISSING
    try:
        return ast.literal_eval(value)
    except ValueError:
        return MISSING


@functools.lru_cache(maxsize=None)
def class_fields(path: str, class_name: str) -> tuple[PeftField, ...]:
    """The dataclass fields of `class_name` in peft's file `path` (relative to the peft package) and of its peft
    bases, stopping at PEFT's framework classes; a subclass's field replaces its base's, as in dataclasses."""
    file = _peft_root() / path
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    imports = {alias.asname or alias.name: node.module for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None:
        raise ConfigError(f"peft {path} defines no {class_name}: this peft version is not supported")
    fields: dict[str, PeftField] = {}
    for base in node.bases:
        name = getattr(base, "id", None)
        if name is None or name in FRAMEWORK_BASES:
            continue
        base_file = file if name not in imports else _module_file(imports[name])
        if base_file is not None:
            fields.update((f.name, f) for f in class_fields(str(base_file.relative_to(_peft_root())), name))
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            fields[statement.target.id] = PeftField(statement.target.id, ast.unparse(statement.annotation),
                                                    _default(statement.value))
    return tuple(fields.values())


def split_pairs(text: str) -> list[str]:
    """`a=1,b=[x,y]` -> ['a=1', 'b=[x,y]']: commas inside brackets or quotes belong to a value."""
    pairs, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            pairs.append(current)
            current = ""
            continue
        current += char
    return [pair.strip() for pair in [*pairs, current] if pair.strip()]


def parse_peft_args(value: Any) -> dict[str, Any]:
    """--peft_args 'key=value,key=value' (values in YAML: numbers, true/false, null, [lists], {maps}), or a mapping
    from a config file's `peft_args:` section. Keys are checked per method (check_peft_args)."""
    if isinstance(value, Mapping):
        return {str(key): item for key, item in value.items()}
    import yaml

    parsed: dict[str, Any] = {}
    for pair in split_pairs(str(value)):
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidValue(f"{pair!r} is not KEY=VALUE")
        try:
            item = yaml.safe_load(text) if text.strip().lower() not in NONE_WORDS else None
        except yaml.YAMLError:
            raise InvalidValue(f"{key.strip()}: {text!r} is not a value (a number, true/false, null, a [list] or a "
                             f"string)") from None
        parsed[key.strip()] = item
    return parsed


def _fits(value: Any, annotation: ast.expr) -> bool:
    """Whether `value` (parsed from YAML) is of the type peft's annotation names. Types this cannot judge (peft's own
    classes and enums) pass; peft's config checks them when the run builds it."""
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return value is None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _fits(value, annotation.left) or _fits(value, annotation.right)
    if isinstance(annotation, ast.Subscript):
        outer = getattr(annotation.value, "id", "")
        inner = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        if outer == "Optional":
            return value is None or _fits(value, inner[0])
        if outer == "Union":
            return any(_fits(value, option) for option in inner)
        if outer == "Literal":
            return value in [ast.literal_eval(option) for option in inner]
        if outer in ("list", "List", "tuple", "Tuple"):
            return isinstance(value, list)
        if outer in ("dict", "Dict"):
            return isinstance(value, dict)
        return True
    name = getattr(annotation, "id", None)
    checks = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
              "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict)}
    return checks.get(name, lambda v: v is not None)(value)


def check_peft_args(method: str, fields: tuple[PeftField, ...], args: Mapping[str, Any],
                    reserved: Mapping[str, str]) -> None:
    """Each key must be a field of the method's PEFT config, not one the lab sets (`reserved`: field -> the flag or
    reason), and its value of the field's type; else one line naming the key and what is allowed."""
    known = {f.name: f for f in fields}
    for key, value in args.items():
        if key in reserved:
            raise ConfigError(f"--peft_args {key}: --method {method} sets it from {reserved[key]}")
        if key not in known:
            import difflib

            allowed = sorted(name for name in known if name not in reserved)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"--peft_args {key}: not a field of --method {method}'s PEFT config ({hint}allowed: "
                              f"{', '.join(allowed) or 'none'})")
        annotation = ast.parse(known[key].annotation, mode="eval").body
        if not _fits(value, annotation):
            raise ConfigError(f"--peft_args {key}={value!r}: --method {method} takes {known[key].annotation} there")
