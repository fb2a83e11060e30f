"""Fitting the multi-head CNN on generated windows, choosing its serving threshold, and its checkpoint.

May import numpy, torch and the rest of ``bullflag_model`` (never matplotlib); tqdm is optional and
imported only by ``progress``. Data workers import ``data`` alone (numpy, no torch), so this
``__init__`` imports nothing. ``options`` holds ``TrainConfig`` and its checks, ``loop`` the
training loop, ``threshold`` the serving-threshold rule and ``metadata`` what the checkpoint records.
"""
