"""Training one run: the Trainer and its optimizer, schedule, speed settings, metrics and tracking; the run's
record; the TF-IDF + linear SVM baseline.

Layer: imports the foundation, config, data, models and runs."""
