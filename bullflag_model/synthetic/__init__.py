"""Synthetic OHLCV windows with planted bull flags and hard negatives, labelled causally.

May import numpy and ``bullflag_model.features`` only. There is no labelled market data, so
training and evaluation draw windows from this parametric, vectorised generator. Each window is
the last ``seq_len`` bars of its own independently generated series (a short pre-history plus the
window), so no two windows share a bar: splitting train/validation/test by seed splits by series
and can never produce overlapping windows.

One module per stage: ``params`` (what can vary), ``planning`` (what each window will contain, as
a ``segments`` table), ``rendering`` (plans -> OHLCV bars), ``labelling`` (the causal rule
labeller), ``chunks`` (windows drawn chunk by chunk) and ``random_walks`` (pattern-free series);
``draws`` holds the random draws planning and rendering share.
"""

from bullflag_model.synthetic.chunks import (
    SyntheticBatch,
    WindowChunk,
    generate_chunk,
    generate_windows,
    window_chunks,
)
from bullflag_model.synthetic.labelling import label_windows
from bullflag_model.synthetic.params import (
    DEFAULT_PARAMS,
    HEADS,
    KINDS,
    PHASES,
    GeneratorParams,
    PhaseStyle,
)
from bullflag_model.synthetic.random_walks import generate_random_walk_series

__all__ = [
    "DEFAULT_PARAMS",
    "HEADS",
    "KINDS",
    "PHASES",
    "GeneratorParams",
    "PhaseStyle",
    "SyntheticBatch",
    "WindowChunk",
    "generate_chunk",
    "generate_random_walk_series",
    "generate_windows",
    "label_windows",
    "window_chunks",
]
