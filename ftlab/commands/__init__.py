"""The subcommands of `main.py` / `ftlab`, one module each with the same parts (ftlab.commands.job), registered in
COMMANDS: the one table the dispatcher (ftlab.cli) and `--help` read.

Layer: the top of the package below the entry points; imports every layer beneath it."""
from ftlab.commands import baseline, bench, compare, curve, predict, report, search, train

# `main.py NAME ...`, in the order `--help` lists them; the first is the default (`main.py [flags]` trains).
COMMANDS = {command.NAME: command for command in (train, baseline, predict, report, search, curve, compare, bench)}
DEFAULT = train.NAME
