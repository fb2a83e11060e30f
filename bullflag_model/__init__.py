"""bullflag_model: the bull-flag CNN and everything around it that needs no Kafka.

Features, synthetic data, training, evaluation, Grad-CAM, inference and the output document. May
import numpy, torch and orjson; matplotlib only in ``plot`` and ``figures``, tqdm (optional) only in
``training.progress``; never ``consumer``.
"""
