"""Runs: a run's directory and files, the run plan (seeds, pre-flight, resume check), resuming, preemption and
per-example prediction files.

Layer: imports the foundation, ftlab.config, ftlab.data and ftlab.models (light parts only)."""
