"""Checkpoint -> ONNX graph for ONNX Runtime serving, built node by node from the weights.

The graph takes windows ``[B, F, L]`` and returns the head ``logits`` ``[B, 4]``, the ``conv4``
output ``[B, C4, L // 8]`` and the closed-form Grad-CAM channel weights ``cam_weights``
``[B, C4]`` of the sequence score (``BullFlagCNNMultiHead.sequence_channel_weights``). Choices
measured faster or exact on ONNX Runtime: each Conv1d runs as a Conv2d on a ``[B, C, 1, L]`` view
(its 2-D kernels are much faster than the 1-D ones), batch norm is folded into the conv weights
(in float64, then rounded once), and the sigmoid the gradient needs is written as
``exp(-softplus(z))`` (ONNX Runtime's Sigmoid underflows to exactly 0 below about -17).
Building the graph from the weights, not by tracing, makes the file a pure function of the
checkpoint: the same checkpoint gives the same bytes on any machine and torch version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.features import FEATURE_SPEC
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.model_files import (
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    default_checkpoint_path,
    file_sha256,
    onnx_path_for,
)

OPSET = 17
OUTPUTS = ("logits", "conv4", "cam_weights")


def folded_conv(model: BullFlagCNNMultiHead, block: str) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[C_out, C_in, 1, k]`` and bias ``[C_out]`` of conv block ``block`` with its batch
    norm folded in: ``bn(conv(x)) = conv'(x) + b'`` exactly in eval mode (up to one rounding)."""
    conv, bn = getattr(model, block)[0], getattr(model, block)[1]
    weight = conv.weight.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy()
    beta = bn.bias.detach().double().numpy()
    mean = bn.running_mean.detach().double().numpy()
    var = bn.running_var.detach().double().numpy()
    scale = gamma / np.sqrt(var + bn.eps)
    folded = (weight * scale[:, None, None])[:, :, None, :]
    return folded.astype(np.float32), (beta - mean * scale).astype(np.float32)


def _initializer(name: str, value: np.ndarray) -> TensorProto:
    """A named constant tensor of the graph."""
    return numpy_helper.from_array(np.require(value, requirements="C"), name=name)


def build_graph(model: BullFlagCNNMultiHead) -> onnx.GraphProto:
    """The serving graph of ``model`` (module docstring): convs, pooled heads, closed-form weights."""
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    n_heads, d_in, hidden = model.heads.w1.shape
    c4 = model.config.channels[-1]
    l_conv = model.seq_len // 8

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def const(name: str, value: np.ndarray) -> str:
        inits.append(_initializer(name, value))
        return name

    const("axis_2", np.array([2], dtype=np.int64))
    x = node("Unsqueeze", ["windows", "axis_2"], "windows_2d")
    for i, block in enumerate(("conv1", "conv2", "conv3", "conv4")):
        weight, bias = folded_conv(model, block)
        pad = weight.shape[-1] // 2
        const(f"{block}.weight", weight)
        const(f"{block}.bias", bias)
        x = node(
            "Conv",
            [x, f"{block}.weight", f"{block}.bias"],
            f"{block}.conv",
            kernel_shape=[1, weight.shape[-1]],
            pads=[0, pad, 0, pad],
        )
        x = node("Relu", [x], f"{block}.relu")
        if i < 3:
            x = node("MaxPool", [x], f"pool{i + 1}", kernel_shape=[1, 2], strides=[1, 2])
    a = node("Squeeze", [x, "axis_2"], "conv4")

    const("last_step", np.array(l_conv - 1, dtype=np.int64))
    mean = node("ReduceMean", [a], "pooled.mean", axes=[2], keepdims=0)
    peak = node("ReduceMax", [a], "pooled.max", axes=[2], keepdims=0)
    last = node("Gather", [a, "last_step"], "pooled.last", axis=2)
    pooled = node("Concat", [mean, peak, last], "pooled", axis=1)

    w1 = model.heads.w1.detach().numpy()
    w2 = model.heads.w2.detach().numpy()
    w1_flat = np.transpose(w1, (1, 0, 2)).reshape(d_in, n_heads * hidden)
    spread = np.zeros((n_heads, n_heads * hidden), dtype=np.float32)
    for k in range(n_heads):
        spread[k, k * hidden : (k + 1) * hidden] = w2[k]
    const("heads.w1", w1_flat)
    const("heads.b1", model.heads.b1.detach().numpy().reshape(-1))
    const("heads.w2", np.ascontiguousarray(spread.T))
    const("heads.b2", model.heads.b2.detach().numpy())
    pre = node("Add", [node("MatMul", [pooled, "heads.w1"], "heads.pre_mm"), "heads.b1"], "heads.pre")
    relu = node("Relu", [pre], "heads.hidden")
    node("Add", [node("MatMul", [relu, "heads.w2"], "heads.out_mm"), "heads.b2"], "logits")

    # d(mean_k logsigmoid z_k)/dz_k = sigmoid(-z_k) / K, then back through the heads to pooled.
    const("inv_heads", np.array(1.0 / n_heads, dtype=np.float32))
    const("zero", np.array(0.0, dtype=np.float32))
    const("heads.w2_spread", spread)
    const("heads.w1_t", np.ascontiguousarray(w1_flat.T))
    const("inv_l_conv", np.array(1.0 / l_conv, dtype=np.float32))
    const("three_parts", np.array([0, 3, c4], dtype=np.int64))
    const("axis_1", np.array([1], dtype=np.int64))
    soft = node("Softplus", ["logits"], "grad.softplus")
    upstream = node(
        "Mul", [node("Exp", [node("Neg", [soft], "grad.neg")], "grad.sig"), "inv_heads"], "grad.up"
    )
    spread_up = node("MatMul", [upstream, "heads.w2_spread"], "grad.spread")
    mask = node("Cast", [node("Greater", [pre, "zero"], "grad.active")], "grad.mask", to=TensorProto.FLOAT)
    back = node("Mul", [spread_up, mask], "grad.hidden")
    grad = node("MatMul", [back, "heads.w1_t"], "grad.pooled")
    parts = node("Reshape", [grad, "three_parts"], "grad.parts")
    summed = node("ReduceSum", [parts, "axis_1"], "grad.summed", keepdims=0)
    node("Mul", [summed, "inv_l_conv"], "cam_weights")

    shape_in: list[str | int | None] = ["batch", model.n_features, model.seq_len]
    return helper.make_graph(
        nodes,
        "bullflag_cnn",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, shape_in)],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_heads]),
            helper.make_tensor_value_info("conv4", TensorProto.FLOAT, ["batch", c4, l_conv]),
            helper.make_tensor_value_info("cam_weights", TensorProto.FLOAT, ["batch", c4]),
        ],
        inits,
    )


def export_model(checkpoint: Path | None = None) -> onnx.ModelProto:
    """The ONNX model of ``checkpoint`` (default: the shipped one), its metadata included.

    The metadata carries what serving needs without torch: ``model_version``, the checkpoint's
    metadata and metrics, the feature spec, the window shape and the checkpoint file's SHA-256,
    which the runtime compares to refuse an export that no longer matches its checkpoint.
    """
    path = checkpoint if checkpoint is not None else default_checkpoint_path()
    loaded = load_checkpoint(path)
    model = loaded.model
    props = {
        "format": ONNX_FORMAT,
        "format_version": str(ONNX_FORMAT_VERSION),
        "model_version": loaded.model_version,
        "checkpoint_sha256": file_sha256(loaded.path),
        "feature_spec": json.dumps(FEATURE_SPEC.as_dict(), sort_keys=True),
        "n_features": str(model.n_features),
        "seq_len": str(model.seq_len),
        "metadata": json.dumps(loaded.metadata, sort_keys=True),
        "metrics": json.dumps(loaded.metrics, sort_keys=True),
    }
    proto = helper.make_model(
        build_graph(model),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bullflag-stream",
        ir_version=8,
    )
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    return proto


def export_onnx(checkpoint: Path | None = None, out: Path | None = None) -> Path:
    """Write ``checkpoint``'s export (default: beside it, same name with ``.onnx``); returns the path."""
    path = checkpoint if checkpoint is not None else default_checkpoint_path()
    target = out if out is not None else onnx_path_for(path)
    target.write_bytes(export_model(path).SerializeToString(deterministic=True))
    return target
