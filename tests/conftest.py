"""Test-wide hypothesis settings: ``BULLFLAG_TEST_MAX_EXAMPLES`` caps examples for quick runs.

Mutation testing (docs/testing.md) sets it, so that each mutant's run stays short; the cap
comes with a fixed seed, so that a mutant is killed or survives the same way on every run.
"""

from __future__ import annotations

from hypothesis import settings

from tests.strategies import EXAMPLES_CAP

if EXAMPLES_CAP is not None:
    settings.register_profile(
        "capped", max_examples=EXAMPLES_CAP, derandomize=True, database=None, print_blob=False
    )
    settings.load_profile("capped")
