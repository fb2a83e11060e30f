"""Test-wide hypothesis settings: ``BULLFLAG_TEST_MAX_EXAMPLES`` caps examples for quick runs.

Mutation testing (docs/testing.md) sets it, so that each mutant's run stays short; the cap
comes with a fixed seed, so that a mutant is killed or survives the same way on every run,
and without shrinking: a verdict needs only a failing example, and shrinking one of the
pipeline's long streams takes minutes, which turned killed mutants into timeouts.
"""

from __future__ import annotations

from hypothesis import Phase, settings

from tests.strategies import EXAMPLES_CAP

if EXAMPLES_CAP is not None:
    settings.register_profile(
        "capped",
        max_examples=EXAMPLES_CAP,
        derandomize=True,
        database=None,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate),
    )
    settings.load_profile("capped")
