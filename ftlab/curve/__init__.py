"""`main.py curve`: learning curves over nested training-set sizes, methods and seeds, each point an ordinary run.

Layer: beside search and bench; imports analysis, training, runs, data, models, config and the foundation."""
