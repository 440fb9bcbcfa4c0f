"""The shape every command has, and what the dispatcher (ftlab.cli) sets up for it.

A command is a module of ftlab.commands with
- NAME: the word that selects it (`main.py NAME ...`),
- SUMMARY: one line for `main.py --help`,
- build_parser(prog): its argparse parser (what `--help` prints; light: nothing heavy is imported to build it),
- prepare(argv) -> Job: its flags read and checked, and everything that can be checked without loading a model or a
  dataset; a mistake here costs well under a second.
The dispatcher then sets up the process once, for whichever command it is (library noise, the hub's offline
switches, malloc, stop signals), and runs the job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # transformers: imported by the dispatcher only for jobs that train
    from ftlab.runs.preemption import StopRequest


@dataclass
class Job:
    """A command's checked request and what it needs from the process.

    run: does the work; gets the stop request of a job that `trains` (None otherwise); returns the exit code.
    libraries: it loads models or datasets: their notices are quieted and the hub probed (offline switches) first.
    four_bit: this process trains on a 4-bit base (QLoRA): the notices of 4-bit kernels concern it.
    tracking: W&B is on (else W&B's environment switches, e.g. WANDB_MODE, are hidden from the libraries).
    verbose: keep the libraries' notices and progress bars.
    trains: it trains: malloc is tuned, SIGUSR1/SIGTERM/SIGINT become stop requests, and a stopped job exits with
        exit_codes.INTERRUPTED after saying `continue_hint()`: how to continue it.
    """
    run: Callable[[Optional["StopRequest"]], int]
    libraries: bool = True
    four_bit: bool = False
    tracking: bool = False
    verbose: bool = False
    trains: bool = False
    continue_hint: Callable[[], str] = lambda: "run the same command to continue"
