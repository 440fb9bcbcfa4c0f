"""`main.py bench`: the reference and default recipes side by side, the GEMM rate they are measured against.

Layer: imports everything below it (config, runs, training)."""
