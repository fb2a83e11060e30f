"""Grad-CAM cost: the spec's per-window path against the batched ``infer_batch``, per window.

Run: ``python -m benchmarks.bench_gradcam``. For B windows it times
- ``forward``: one plain batched forward (inference mode): the floor;
- ``infer_batch+cam``: ``BullFlagCNNInfer.infer_batch`` with Grad-CAM on every row
  (threshold 0): one forward, then one forward+backward over the rows;
- ``captum``: Captum's ``LayerGradCam`` on the sequence score over the same rows (batched),
  the reference implementation;
- ``spec``: the spec's path, per window: a no-grad forward, then a forward+backward and a
  Python loop over channels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from captum.attr import LayerAttribution, LayerGradCam

from benchmarks.report import print_table, write_json
from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.synthetic import generate_windows
from consumer.core.scoring import MAX_CHUNK, Scorer
from consumer.core.windows import Windows


def spec_style(model: BullFlagCNNMultiHead, window: torch.Tensor) -> list[float]:
    """The spec's per-window path: no-grad forward, forward+backward, loop over channels."""
    with torch.no_grad():
        outputs = model(window)
        _ = [outputs[name].item() for name in HEAD_NAMES]
    store: dict[str, torch.Tensor] = {}

    def hook(_module: object, _inputs: object, output: torch.Tensor) -> None:
        store["a"] = output.detach()
        output.register_hook(lambda grad: store.__setitem__("g", grad.detach()))

    handle = model.conv4.register_forward_hook(hook)
    try:
        model.zero_grad()
        outputs = model(window.clone().requires_grad_(True))
        probs = torch.cat([outputs[name] for name in HEAD_NAMES], dim=1)
        (probs.prod(dim=1) ** 0.25).backward()
    finally:
        handle.remove()
    activations, weights = store["a"][0], store["g"][0].mean(dim=1)
    cam = torch.zeros(activations.shape[1])
    for c in range(activations.shape[0]):
        cam += weights[c] * activations[c]
    cam = F.relu(cam)
    if cam.max() > 0:
        cam = cam / cam.max()
    upsampled = F.interpolate(cam.view(1, 1, -1), size=window.shape[-1], mode="linear", align_corners=False)
    return upsampled[0, 0].tolist()


def captum_style(model: BullFlagCNNMultiHead, x: torch.Tensor) -> torch.Tensor:
    """Captum's LayerGradCam of the geometric-mean score, normalised and upsampled like ours."""

    def sequence(inputs: torch.Tensor) -> torch.Tensor:
        outputs = model(inputs)
        return torch.cat([outputs[name] for name in HEAD_NAMES], dim=1).prod(dim=1) ** 0.25

    with torch.no_grad():
        model(x)
    attributions = LayerGradCam(sequence, model.conv4).attribute(x, relu_attributions=True)
    peak = attributions.amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return LayerAttribution.interpolate(attributions / peak, (x.shape[-1],), "linear")[:, 0].detach()


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def scoring_path(windows: int, repeats: int) -> dict[str, float]:
    """The worker's whole scoring path per window against the plain forward of the same chunks.

    ``Scorer.score`` (features, forward, Grad-CAM on the top 10 %, CNNOutput serialisation) on
    generated windows, in its own chunk size; the floor is ``model(x)`` on the same chunks.
    """
    bars = generate_windows(windows, seed=11).bars
    infer = BullFlagCNNInfer(enable_gradcam=True)
    features = build_features(bars)
    infer.threshold = float(np.quantile(infer.score(features).sequence, 0.9))
    scorer = Scorer(infer, "1m")
    batch = Windows([f"S{i}" for i in range(windows)], bars, np.arange(windows), np.arange(windows))
    x = torch.from_numpy(features)

    def floor() -> None:
        with torch.inference_mode():
            for lo in range(0, windows, MAX_CHUNK):
                infer.model(x[lo : lo + MAX_CHUNK])

    floor_s = best_of(floor, repeats)
    path_s = best_of(lambda: scorer.score(batch), repeats)
    return {
        "windows": windows,
        "floor_us": floor_s / windows * 1e6,
        "scoring_path_us": path_s / windows * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scoring-windows", type=int, default=10_240)
    args = parser.parse_args()

    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0)
    model = infer.model
    rows, results = [], []
    for size in args.sizes:
        windows = build_features(generate_windows(size, seed=size).bars)
        x = torch.from_numpy(windows)

        def forward(x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                model(x)

        forward_s = best_of(forward, args.repeats)
        batched_s = best_of(lambda w=windows: infer.infer_batch(w), args.repeats)
        captum_s = best_of(lambda x=x: captum_style(model, x), args.repeats)
        spec_windows = list(x[: min(size, 256)].split(1))
        spec_repeats = max(1, args.repeats // 2)
        spec_s = best_of(lambda ws=spec_windows: [spec_style(model, w) for w in ws], spec_repeats)
        per = {
            "forward_us": forward_s / size * 1e6,
            "batched_gradcam_us": batched_s / size * 1e6,
            "captum_us": captum_s / size * 1e6,
            "spec_us": spec_s / len(spec_windows) * 1e6,
        }
        per["batched_vs_forward"] = per["batched_gradcam_us"] / per["forward_us"]
        per["spec_vs_batched"] = per["spec_us"] / per["batched_gradcam_us"]
        results.append({"batch": size, "spec_windows_timed": len(spec_windows), **per})
        rows.append(
            [
                size,
                per["forward_us"],
                per["batched_gradcam_us"],
                per["captum_us"],
                per["spec_us"],
                f"{per['batched_vs_forward']:.2f}x",
                f"{per['spec_vs_batched']:.1f}x",
            ]
        )
    print_table(
        [
            "B",
            "forward us/window",
            "infer_batch+cam us/window",
            "Captum us/window",
            "spec us/window",
            "cam/forward",
            "spec/batched",
        ],
        rows,
    )
    path = scoring_path(args.scoring_windows, args.repeats)
    print(
        f"worker scoring path ({path['windows']:,} windows, chunks of {MAX_CHUNK}): "
        f"{path['scoring_path_us']:.1f} us/window vs {path['floor_us']:.1f} us/window plain forward "
        f"({path['scoring_path_us'] / path['floor_us']:.2f}x)"
    )
    print(f"written {write_json('gradcam', {'results': results, 'scoring_path': path})}")


if __name__ == "__main__":
    main()
