"""`main.py compare`: every method at its own tuned learning rate, confirmed on fresh seeds (ftlab.commands.compare).
args: the flags and the plan; tasks: the studies and runs; output: verdicts, tuning curves, files and plots."""
