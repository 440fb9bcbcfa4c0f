"""The exit codes of every command, in one place because the batch scripts and the SLURM templates branch on them."""
BAD_INPUT = 2  # a UserError: one line on stderr, nothing heavy loaded
# sysexits.h EX_TEMPFAIL, "a temporary failure; the user is invited to retry": distinct from success (0), errors
# (1), bad input (2) and the 128+N of a process killed by signal N, which the batch scripts must tell apart from a
# run that stopped cleanly and can be resumed.
INTERRUPTED = 75
# Ctrl-C that did not wait for a clean stop (a second one during training, or one outside training): the shell's
# 128 + SIGINT.
ABORTED = 130
