"""`main.py search`: Optuna over ordinary runs (space, storage, trials, results).

Layer: imports everything below it (config, runs, training)."""
