"""The flag reference of `train` (the docs' reference/flags.md page), generated from the schema so that it cannot drift from
the flags: per option group, every field's flag, default, allowed values, help and whether it is part of a run's
identity; then the flags the parser adds beyond the schema (--config and the seed projects' aliases).

The docs build writes it (docs/hooks/ftlab_docs.py); tests/test_docs.py holds it equal to `main.py --help`.
"""
from __future__ import annotations

import argparse
import dataclasses
import html

from ftlab.config.parse import OPTIONAL_BOOL, POSITIVE_INT, build_parser, shown_default
from ftlab.config.schema import FIELDS, GROUP_CLASSES
from ftlab.config.values import OPTIONAL_VALUE_PARSERS

INTRO = """\
Generated from the configuration schema (`ftlab/config/schema.py`) by `ftlab/config/reference.py` when the docs are
built, so it lists exactly what `python main.py --help` lists. `baseline` uses the data flags and `--ngram_max`;
`search`, `curve` and `bench` pass them on to the runs they start, except those they set themselves.

Every flag is also a key of a `--config` file (YAML or JSON; flat, or under its group's section as a run's
`config.yaml` writes it). Flags that take `true`/`false` also work bare (`--merge` = `--merge true`).
**identity** says whether the flag is part of a run's configuration group: runs that differ only in flags marked
*no* are seeds of one configuration, and `--resume` may change them (see
[Seeds and configuration groups](../guide/seeds.md))."""


def _cell(text: str) -> str:
    """Text for a markdown table cell: argparse's %-escape undone, HTML and the table's own syntax escaped."""
    return html.escape(text.replace("%%", "%"), quote=False).replace("|", "\\|").replace("*", "\\*")


def help_default(f: dataclasses.Field) -> str:
    """A field's default as `main.py --help` shows it (ftlab.config.parse.shown_default, which the parser appends to
    the help), as a table cell: `–` where none is shown (the help says what an unset value means)."""
    shown = shown_default(f)
    return f"`{shown[len(' (default: '):-1]}`" if shown else "–"


def _allowed(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta["choices"]:
        return "one of " + ", ".join(f"`{choice}`" for choice in meta["choices"])
    if meta["parse"] in OPTIONAL_VALUE_PARSERS:
        return _cell(meta["allowed"]) + " (bare: `true`)"
    return _cell(meta["allowed"]) if meta["allowed"] else "text"


def _field_rows(group: str) -> list[str]:
    rows = ["| flag | default | allowed values | meaning | identity |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(GROUP_CLASSES[group]):
        identity = "yes" if f.metadata["identity"] else "no"
        rows.append(f"| `--{f.name}` | {help_default(f)} | {_allowed(f)} | {_cell(f.metadata['help'])} | "
                    f"{identity} |")
    return rows


def _parser_only_actions() -> list[argparse.Action]:
    """The flags of `train` that are not schema fields (--config, the aliases), in the parser's order."""
    # argparse has no public accessor for a parser's arguments; _actions has been the same list since Python 2.7.
    return [action for action in build_parser()._actions
            if action.option_strings and action.dest not in FIELDS and action.dest != "help"]


def _action_allowed(action: argparse.Action) -> str:
    if action.choices:
        return "one of " + ", ".join(f"`{choice}`" for choice in action.choices)
    if action.type is OPTIONAL_BOOL:
        return "true or false (bare: `true`)"
    if action.type is POSITIVE_INT:
        return "an integer >= 1"
    return "text"


def flag_reference() -> str:
    """The reference page as markdown."""
    lines = ["# Flags of `train`", "", INTRO, ""]
    for group in GROUP_CLASSES:
        lines += [f"## {group}", "", *_field_rows(group), ""]
    lines += ["## config file and aliases", "",
              "Flags outside the schema: the configuration file, and the seed projects' spellings, which map onto "
              "the flags above (contradicting them is an error).", "",
              "| flag | default | allowed values | meaning |", "|---|---|---|---|"]
    for action in _parser_only_actions():
        lines.append(f"| `{action.option_strings[0]}` | – | {_action_allowed(action)} | {_cell(action.help or '')} |")
    return "\n".join(lines) + "\n"

