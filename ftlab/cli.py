"""The entry of `main.py`, `python -m ftlab` and the `ftlab` console script: pick the command (ftlab.commands),
let it check its flags, set the process up once for it, run it; print a user's error as one line (exit 2)."""
from __future__ import annotations

import difflib
import os
import sys
from typing import Optional

from ftlab import exit_codes
from ftlab.commands import COMMANDS, DEFAULT
from ftlab.commands.baseline import NAME as BASELINE, split_baseline_flag
from ftlab.commands.job import Job
from ftlab.errors import ConfigError, UserError

HELP_FLAGS = ("-h", "--help")


def program_name() -> str:
    """How the user called us, for usage lines: main.py, ftlab, or python -m ftlab."""
    name = os.path.basename(sys.argv[0] or "main.py")
    return "python -m ftlab" if name == "__main__.py" else name


def choose_command(argv: list[str]) -> tuple[str, list[str], bool]:
    """(command, its arguments, whether it was named). train is the default; `--check_baseline` (the seed projects'
    spelling) is the baseline; a first word that names no command is a mistyped one (train takes no words)."""
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:], True
    if argv and not argv[0].startswith("-"):
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"commands: {', '.join(COMMANDS)}"
        raise ConfigError(f"unknown command {argv[0]!r} ({hint})")
    baseline, rest = split_baseline_flag(argv)
    return (BASELINE, rest, True) if baseline else (DEFAULT, rest, False)


def overview(prog: str) -> str:
    """`main.py --help`: the commands, one line each, then (from the caller) the default command's flags."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {prog} [COMMAND] [flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.SUMMARY}" for name, command in COMMANDS.items()]
    lines += ["", f"`{prog} COMMAND --help` shows a command's flags. The flags of {DEFAULT}, the default command:", ""]
    return "\n".join(lines)


def set_up(job: Job) -> None:
    """What every command that loads the libraries needs first, done here once: their notices quieted (some are
    read on import), W&B's switches hidden when it is off, and the hub's offline switches set when it is down
    (before transformers/datasets read them)."""
    if not job.libraries:
        return
    from ftlab.hub import enter_offline_mode_if_unreachable
    from ftlab.runtime import hide_wandb_settings, quiet_library_noise

    quiet_library_noise(job.four_bit, job.verbose)
    if not job.tracking:
        hide_wandb_settings()
    enter_offline_mode_if_unreachable()


def execute(name: str, job: Job) -> int:
    """Run the job; one that trains with malloc tuned and stop signals taken as requests: a stopped job says how to
    continue and exits with exit_codes.INTERRUPTED."""
    set_up(job)
    if not job.trains:
        return job.run(None)
    from ftlab.runs.preemption import TrainingInterrupted, stop_on_signals
    from ftlab.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    try:
        with stop_on_signals() as stop:
            return job.run(stop)
    except TrainingInterrupted as exc:
        if exc.main_process:
            print(f"[{name}] interrupted: {exc}; {job.continue_hint()} (exit code {exit_codes.INTERRUPTED})",
                  file=sys.stderr, flush=True)
        return exit_codes.INTERRUPTED


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = program_name()
    job: Optional[Job] = None
    try:
        name, argv, named = choose_command(argv)
        command = COMMANDS[name]
        if any(arg in HELP_FLAGS for arg in argv):
            # Answered before any flag is checked (argparse would stop at a bad flag before it reaches --help).
            if not named:
                print(overview(prog))
            command.build_parser(prog).print_help()
            return 0
        job = command.prepare(argv)
        return execute(name, job)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except KeyboardInterrupt:
        trained = job is not None and job.trains
        print("[ftlab] aborted (Ctrl-C)" + (": a checkpoint being written is incomplete and ignored when resuming; "
                                            f"{job.continue_hint()}" if trained else ""), file=sys.stderr, flush=True)
        return exit_codes.ABORTED
