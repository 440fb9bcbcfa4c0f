"""Reading runs back: records, groups of seeds, statistics, comparisons, the report and its plots.

Layer: imports the foundation, config and runs; never training (a report must not load torch)."""
