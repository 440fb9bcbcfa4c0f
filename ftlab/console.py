"""What the commands print for a person at a terminal: lines and tables that fit WIDTH columns. Full tables (every
column, every digit) go to files (markdown, CSV); the terminal gets the columns one reads first. Light: rich loads
only when a table is printed."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

WIDTH = 100  # at most this many columns, also where the terminal is wider (a log file has no width)


def width() -> int:
    """The terminal's width, capped at WIDTH; WIDTH off a terminal."""
    try:
        columns = os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return WIDTH
    return max(40, min(WIDTH, columns))


def short_path(path: Any) -> str:
    """A path as short as it stays unambiguous: relative to the working directory when under it, else with the home
    directory written ~ (cache paths repeat /root/.cache/... otherwise)."""
    text = str(path)
    try:
        resolved = Path(text).expanduser().resolve()
    except (OSError, RuntimeError):
        return text
    cwd, home = Path.cwd(), Path.home()
    if resolved == cwd or cwd in resolved.parents:
        return str(resolved.relative_to(cwd)) or "."
    if home != Path("/") and (resolved == home or home in resolved.parents):
        return str(Path("~") / resolved.relative_to(home))
    return text


def wrap(line: str) -> str:
    """One line wrapped at WIDTH columns, the continuation lines indented; a single word longer than a line (a
    path) stays whole."""
    if len(line) <= WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, width=WIDTH, subsequent_indent="    ", break_long_words=False,
                                   break_on_hyphens=False))


def say(message: str, prefix: str = "[ftlab]", file: Optional[TextIO] = None) -> None:
    """`prefix message`, wrapped (wrap)."""
    print(wrap(f"{prefix} {message}" if prefix else message), file=file or sys.stdout, flush=True)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = (),
                 wrap: Sequence[str] = ()) -> str:
    """The rows as a plain table of at most width() columns: `right`-aligned columns hold numbers; `wrap` columns
    (names, notes) fold onto more lines where the table would be too wide."""
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left",
                         overflow="fold" if column in wrap else "ellipsis", no_wrap=column not in wrap)
    for row in rows:
        table.add_row(*row)
    buffer = StringIO()
    Console(file=buffer, width=width(), color_system=None, emoji=False, highlight=False,
            markup=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
