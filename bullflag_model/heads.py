"""Names of the model's four heads, in output order; torch-free so serving code can name them."""

from __future__ import annotations

HEAD_NAMES = ("flag", "breakout", "retest", "continuation")
