"""Honest held-out measurement of a bull-flag model on generated data.

May import numpy, torch and the rest of ``bullflag_model``; matplotlib only through
``bullflag_model.figures``, when ``report.write_outputs`` draws the figures. Everything is measured
on data generated from seeds the training command never uses (``experiments.EVALUATION_SEEDS``):
per-head ROC-AUC, average precision and calibration error, the ``sequence_score`` signal at the
serving threshold (confusion table, false-positive rate per hard-negative kind), false alarms while
sliding over long pattern-free random walks, the same window metrics under distribution shifts the
model did not train on, scale invariance, and Grad-CAM quality (pointing game and deletion test).

``metrics`` holds the metric maths (numpy only), ``scoring`` runs the model over numpy windows,
``experiments`` says what is measured on which data, and ``report`` assembles the JSON report
against its targets and writes it with its figures.
"""
