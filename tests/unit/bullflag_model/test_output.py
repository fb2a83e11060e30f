"""CNNOutput documents: valid against the shipped schema, deterministic ids, rounding."""

from __future__ import annotations

import jsonschema
import numpy as np
import orjson
import pytest

from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.output import (
    INTENSITY_DECIMALS,
    cnn_output,
    cnn_output_schema,
    encode_batch,
    output_id,
)
from bullflag_model.synthetic import generate_windows


@pytest.fixture(scope="module")
def documents() -> list[dict[str, object]]:
    windows = build_features(generate_windows(10, seed=8).bars)
    threshold = float(np.median(BullFlagCNNInfer().score(windows).sequence))
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=threshold)
    scores = infer.score(windows)
    symbols = [f"SYM{i}" for i in range(10)]
    bar_end = np.arange(10, dtype=np.int64) * 60_000 + 1_732_550_400_000
    encoded = encode_batch(
        scores,
        symbols=symbols,
        interval="1m",
        bar_end_ts=bar_end,
        window_start_ts=bar_end - 200 * 60_000,
        model_version=infer.model_version,
        threshold=threshold,
    )
    return [orjson.loads(doc) for doc in encoded]


def test_documents_validate_against_the_shipped_schema(documents: list[dict[str, object]]) -> None:
    validator = jsonschema.Draft202012Validator(cnn_output_schema())
    validator.check_schema(cnn_output_schema())
    for document in documents:
        validator.validate(document)
    kinds = {document["activation_map"] is None for document in documents}
    assert kinds == {True, False}, "the fixture must cover documents with and without a map"


def test_signal_and_map_follow_the_threshold(documents: list[dict[str, object]]) -> None:
    for document in documents:
        assert document["signal"] == (document["sequence_score"] >= document["threshold"])
        assert (document["activation_map"] is not None) == document["signal"]


def test_schema_rejects_a_broken_document(documents: list[dict[str, object]]) -> None:
    broken = dict(documents[0], flag_prob=1.5)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, cnn_output_schema())
    missing = {k: v for k, v in documents[0].items() if k != "bar_end_ts"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, cnn_output_schema())


def test_id_is_deterministic_and_distinguishes_its_inputs() -> None:
    base = output_id("AAPL", "1m", 1_000, "bullflag-cnn+0123456789")
    assert base == output_id("AAPL", "1m", 1_000, "bullflag-cnn+0123456789")
    others = {
        output_id("MSFT", "1m", 1_000, "bullflag-cnn+0123456789"),
        output_id("AAPL", "5m", 1_000, "bullflag-cnn+0123456789"),
        output_id("AAPL", "1m", 2_000, "bullflag-cnn+0123456789"),
        output_id("AAPL", "1m", 1_000, "bullflag-cnn+9876543210"),
    }
    assert base not in others
    assert len(others) == 4


def test_rounding_policy() -> None:
    cam = np.linspace(0.0, 1.0, 200) / 3.0
    result = {
        "flag_prob": 0.123456789,
        "breakout_prob": 0.5,
        "retest_prob": 0.25,
        "continuation_prob": 0.9999999,
        "sequence_score": 0.333333333,
        "activation_map": cam.tolist(),
    }
    document = cnn_output(
        result,
        symbol="AAPL",
        interval="1m",
        bar_end_ts=60_000,
        window_start_ts=0,
        model_version="bullflag-cnn+0123456789",
        threshold=0.3,
    )
    assert document["flag_prob"] == 0.123457
    assert document["sequence_score"] == 0.333333
    assert document["signal"] is True
    intensities = document["activation_map"]["intensities"]
    assert intensities == [round(v, INTENSITY_DECIMALS) for v in cam]
    assert document["activation_map"]["indices"] == list(range(200))
    jsonschema.validate(document, cnn_output_schema())
