"""How far the generator's default and ``real_market`` preset sit from the shipped real series.

Run: ``python -m benchmarks.real_generator`` (about a minute on a 2-core machine; needs the
``real`` extra). Per channel and series: the fixed real-vs-generated classifier's AUC
(``bullflag_model.realdata.shift.classifier_auc``, the same as ``bullflag evaluate --real``) of
4,000 generated windows of the evaluation seed against the series' sliding windows, default /
preset; then the market traits (``realdata.market_stats``) of both draws and of each series.
No model is involved, so it measures the generator alone. The preset was calibrated without
looking at the held-out series (GOOG), so its row is the out-of-sample check.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.report import print_table, write_json
from bullflag_model.features import FEATURE_SPEC
from bullflag_model.realdata.generator_shift import AUC_TARGET, generator_shift, real_statistics
from bullflag_model.realdata.report import SYNTHETIC_SEED
from bullflag_model.realdata.series import HELD_OUT_SERIES, load_all
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams


def _auc_rows(default: dict[str, Any], preset: dict[str, Any]) -> list[list[str]]:
    """One row per channel: ``default / preset`` AUC for each series."""
    names = list(default["auc"])
    return [
        [channel, *(f"{default['auc'][s][channel]:.3f} / {preset['auc'][s][channel]:.3f}" for s in names)]
        for channel in FEATURE_SPEC.channels
    ]


def _trait_rows(default: dict[str, Any], preset: dict[str, Any], real: dict[str, Any]) -> list[list[str]]:
    """One row per market trait: default, preset, then each real series."""
    columns = [default["market"], preset["market"], *(market for _, market in real.values())]
    return [[trait, *(f"{c[trait]:.3f}" for c in columns)] for trait in default["market"]]


def main() -> None:
    """Measure both generator settings against every real series, print the tables, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4000, help="generated windows per setting")
    parser.add_argument("--seed", type=int, default=SYNTHETIC_SEED, help="generator seed")
    args = parser.parse_args()
    real = real_statistics(load_all())
    default = generator_shift(DEFAULT_PARAMS, real, args.windows, args.seed)
    preset = generator_shift(GeneratorParams.real_market(), real, args.windows, args.seed)
    print(f"classifier AUC, default / real_market (target <= {AUC_TARGET})")
    print_table(["channel", *real], _auc_rows(default, preset))
    for name, result in (("default", default), ("real_market", preset)):
        counts = ", ".join(
            f"{series}{' (held out)' if series == HELD_OUT_SERIES else ''} {n}"
            for series, n in result["channels_at_most_target"].items()
        )
        print(f"{name}: channels <= {AUC_TARGET} of {len(FEATURE_SPEC.channels)}: {counts}")
    print_table(["trait", "default", "real_market", *real], _trait_rows(default, preset, real))
    path = write_json(
        "real_generator",
        {
            "windows": args.windows,
            "seed": args.seed,
            "default": default,
            "real_market": {**preset, "params": GeneratorParams.real_market().as_dict()},
            "real": {name: market for name, (_, market) in real.items()},
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
