"""The methods table of the docs (docs/guide/methods.md) and the README's list of methods, written from the registry:
tests/test_method_registry.py fails when the committed pages differ from what this writes."""
from __future__ import annotations

from ftlab.methods.registry import LEFT_OUT, METHODS

TABLE_START, TABLE_END = "<!-- methods-table:start -->", "<!-- methods-table:end -->"
LIST_START, LIST_END = "<!-- methods-list:start -->", "<!-- methods-list:end -->"


def _yes(flag: bool) -> str:
    return "yes" if flag else "—"


def methods_table() -> str:
    """Markdown: per method its name (aliases), what trains, default learning rate (its source) and search range,
    whether it saves a PEFT adapter, merges into a plain checkpoint, trains on a 4-bit base, and its FLOP passes."""
    lines = [TABLE_START, "",
             "| method | what trains | default lr | lr search range | adapter | merges | 4-bit base | passes |",
             "|---|---|---:|---|---|---|---|---:|"]
    for method in METHODS.values():
        name = f"`{method.name}`" + "".join(f" (`{alias}`)" for alias in method.aliases)
        four_bit = "loads one" if method.four_bit_base else _yes(method.on_four_bit)
        lines.append(f"| {name} | {method.label}: {method.trains} | {method.default_lr:g} "
                     f"| {method.lr_range[0]:g}–{method.lr_range[1]:g} | {_yes(method.adapter)} "
                     f"| {_yes(method.merges)} | {four_bit} | {method.passes:g} |")
    lines += ["", "Where each default learning rate comes from:", ""]
    lines += [f"- `{method.name}`: {method.lr_source}" for method in METHODS.values()]
    lines += ["", "PEFT's method types that are not methods here:", ""]
    lines += [f"- `{peft_type}`: {why}" for peft_type, why in LEFT_OUT.items()]
    return "\n".join([*lines, "", TABLE_END])


def _gist(why: str) -> str:
    """The head of a left-out type's reason, before its parenthesis, semicolon or colon: the README's short form."""
    for mark in (" (", ";", ":"):
        why = why.split(mark)[0]
    return why


def methods_list() -> str:
    """For the README: every method's name, then PEFT's types left out with the gist of why, wrapped at 120
    columns."""
    import textwrap

    names = ", ".join(f"`{name}`" for name in METHODS) + "."
    left_out = "Left out of PEFT's types: " + "; ".join(
        f"`{peft_type.lower()}` ({_gist(why)})" for peft_type, why in LEFT_OUT.items()) + "."
    wrap = lambda text: textwrap.wrap(text, 120, break_on_hyphens=False)  # noqa: E731
    return "\n".join([LIST_START, *wrap(names), "", *wrap(left_out), LIST_END])
