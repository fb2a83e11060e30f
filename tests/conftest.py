"""Test-wide hypothesis settings: no timing limits, and ``BULLFLAG_TEST_MAX_EXAMPLES`` caps
examples for quick runs.

No property test has a deadline or fails hypothesis's too-slow health check: both measure how
busy the machine is, not the code (speed is measured in ``benchmarks/``), and a loaded machine
tripped the health check on a test whose inputs take 1.5 s to draw there.

Mutation testing (docs/testing.md) sets the cap, so that each mutant's run stays short; the cap
comes with a fixed seed, so that a mutant is killed or survives the same way on every run,
and without shrinking: a verdict needs only a failing example, and shrinking one of the
pipeline's long streams takes minutes, which turned killed mutants into timeouts.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

from tests.strategies import EXAMPLES_CAP

settings.register_profile("bullflag", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bullflag")

if EXAMPLES_CAP is not None:
    settings.register_profile(
        "capped",
        parent=settings.get_profile("bullflag"),
        max_examples=EXAMPLES_CAP,
        derandomize=True,
        database=None,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate),
    )
    settings.load_profile("capped")
