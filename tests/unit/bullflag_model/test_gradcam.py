"""Batched Grad-CAM against Captum, against the spec's per-channel algorithm, and its hygiene."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from captum.attr import LayerAttribution, LayerGradCam
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.features import build_features
from bullflag_model.gradcam import TARGET_HEADS, GradCAM1D, cam_from_activations
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from tests.strategies import ohlcv_windows, random_bars


def random_model(seed: int) -> BullFlagCNNMultiHead:
    """An eval-mode model with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = BullFlagCNNMultiHead()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def random_inputs(batch: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(build_features(random_bars(batch, seed=seed)))


def spec_generate_cam(model: BullFlagCNNMultiHead, x: torch.Tensor, target_head: str) -> torch.Tensor:
    """A literal transcription of the spec: probabilities, prod ** 0.25, a loop over channels."""
    store: dict[str, torch.Tensor] = {}

    def forward_hook(_module: object, _inputs: object, output: torch.Tensor) -> None:
        store["activations"] = output.detach()
        output.register_hook(lambda grad: store.__setitem__("gradients", grad.detach()))

    handle = model.conv4.register_forward_hook(forward_hook)
    try:
        model.zero_grad()
        outputs = model(x)
        if target_head == "sequence":
            probs = torch.cat([outputs[name] for name in HEAD_NAMES], dim=1)
            target = probs.prod(dim=1) ** 0.25
        else:
            target = outputs[target_head].view(-1)
        target.backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    activations = store["activations"][0]
    weights = store["gradients"][0].mean(dim=1)
    cam = torch.zeros(activations.shape[1], dtype=activations.dtype)
    for c in range(activations.shape[0]):
        cam += weights[c] * activations[c]
    cam = F.relu(cam)
    if cam.max() > 0:
        cam = cam / cam.max()
    return F.interpolate(cam.view(1, 1, -1), size=x.shape[-1], mode="linear", align_corners=False)[0, 0]


def captum_cams(model: BullFlagCNNMultiHead, x: torch.Tensor, target_head: str) -> torch.Tensor:
    """Captum's LayerGradCam on the head probability (or geometric mean), max-normalised, upsampled."""

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        outputs = model(inputs)
        if target_head == "sequence":
            return torch.cat([outputs[name] for name in HEAD_NAMES], dim=1).prod(dim=1) ** 0.25
        return outputs[target_head].view(-1)

    attributions = LayerGradCam(forward, model.conv4).attribute(x, relu_attributions=True)
    peak = attributions.amax(dim=-1, keepdim=True)
    normalised = torch.where(peak > 0, attributions / torch.where(peak > 0, peak, 1.0), attributions)
    return LayerAttribution.interpolate(normalised, (x.shape[-1],), "linear")[:, 0].detach()


@pytest.mark.parametrize("target_head", TARGET_HEADS)
def test_matches_captum_layer_gradcam(target_head: str) -> None:
    """Compared in float64, so the 1e-5 tolerance checks the mathematics, not float32 rounding."""
    nonzero_rows = 0
    for seed in range(4):
        model = random_model(seed).double()
        torch.manual_seed(100 + seed)
        x = torch.cat([random_inputs(4, seed=10 + seed), torch.randn(8, 9, 200)]).double()
        with GradCAM1D(model, "conv4") as gradcam:
            ours = gradcam.generate_cams(x, target_head)
        torch.testing.assert_close(ours, captum_cams(model, x, target_head), atol=1e-5, rtol=0)
        nonzero_rows += int((ours.amax(dim=-1) > 0).sum())
    assert nonzero_rows >= 8


@pytest.mark.parametrize("target_head", TARGET_HEADS)
def test_matches_the_specs_per_channel_algorithm(target_head: str) -> None:
    model = random_model(3).double()
    torch.manual_seed(3)
    x = torch.cat([random_inputs(2, seed=20), torch.randn(4, 9, 200)]).double()
    gradcam = GradCAM1D(model, "conv4")
    batched = gradcam.generate_cams(x, target_head)
    for row in range(len(x)):
        expected = spec_generate_cam(model, x[row : row + 1], target_head)
        torch.testing.assert_close(batched[row], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            gradcam.generate_cam(x[row : row + 1], target_head), expected, atol=1e-5, rtol=0
        )


def test_batched_rows_equal_single_rows() -> None:
    model = random_model(4)
    x = random_inputs(16, seed=30)
    gradcam = GradCAM1D(model)
    batched = gradcam.generate_cams(x)
    singles = torch.stack([gradcam.generate_cam(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)


def test_saturated_heads_give_finite_maps_where_the_spec_gives_nan() -> None:
    model = random_model(0)
    with torch.no_grad():
        model.heads.b2[HEAD_NAMES.index("retest")] = -200.0
        model.heads.b2[HEAD_NAMES.index("flag")] = 200.0
    torch.manual_seed(40)
    x = torch.randn(6, 9, 200)
    assert model(x)["retest"].max() == 0.0
    spec_map = spec_generate_cam(model, x[:1], "sequence")
    assert not torch.isfinite(spec_map).all()
    cams = GradCAM1D(model).generate_cams(x, "sequence")
    assert torch.isfinite(cams).all()
    peaks = cams.amax(dim=-1)
    assert (peaks > 0.9).sum() >= 3


def test_hooks_removed_and_no_grad_left_behind() -> None:
    model = random_model(6)
    gradcam = GradCAM1D(model)
    gradcam.generate_cams(random_inputs(3, seed=50))
    assert not model.conv4._forward_hooks
    assert not model.conv4._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    gradcam.close()
    assert not model.conv4._forward_hooks
    with pytest.raises(RuntimeError, match="closed"):
        gradcam.generate_cams(random_inputs(1, seed=50))


def test_restores_train_mode_and_computes_in_eval_mode() -> None:
    model = random_model(7)
    x = random_inputs(5, seed=60)
    gradcam = GradCAM1D(model)
    eval_maps = gradcam.generate_cams(x)
    model.train()
    train_maps = gradcam.generate_cams(x)
    assert model.training
    torch.testing.assert_close(train_maps, eval_maps)


def test_works_inside_no_grad_and_inference_mode() -> None:
    model = random_model(8)
    x = random_inputs(2, seed=70)
    gradcam = GradCAM1D(model)
    expected = gradcam.generate_cams(x)
    with torch.no_grad():
        torch.testing.assert_close(gradcam.generate_cams(x), expected)
    with torch.inference_mode():
        inference_x = random_inputs(2, seed=70)
        torch.testing.assert_close(gradcam.generate_cams(inference_x), expected)


class InplaceAfterConv4(BullFlagCNNMultiHead):
    """Doubles conv4's output in place downstream, which must not alter the captured activation."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        a = self.encode(x)
        return self.decode(a.mul_(2.0) if self.inplace else a * 2.0)


def test_safe_with_in_place_operations_after_the_target_layer() -> None:
    torch.manual_seed(9)
    out_of_place = InplaceAfterConv4(inplace=False).eval()
    in_place = InplaceAfterConv4(inplace=True).eval()
    in_place.load_state_dict(out_of_place.state_dict())
    x = random_inputs(3, seed=80)
    torch.testing.assert_close(GradCAM1D(in_place).generate_cams(x), GradCAM1D(out_of_place).generate_cams(x))


def test_unknown_layer_and_head_are_named_in_errors() -> None:
    model = random_model(10)
    with pytest.raises(ValueError, match="conv9"):
        GradCAM1D(model, "conv9")
    with pytest.raises(ValueError, match="volume"):
        GradCAM1D(model).generate_cams(random_inputs(1, seed=0), "volume")


_PROPERTY_MODEL = random_model(11)


@settings(max_examples=40, deadline=None)
@given(window=ohlcv_windows(), target_head=st.sampled_from(TARGET_HEADS))
def test_maps_always_in_unit_interval_finite_and_full_length(window: np.ndarray, target_head: str) -> None:
    x = torch.from_numpy(build_features(window))[None]
    cam = GradCAM1D(_PROPERTY_MODEL).generate_cam(x, target_head)
    assert cam.shape == (200,)
    assert torch.isfinite(cam).all()
    assert cam.min() >= 0.0
    assert cam.max() <= 1.0
    assert cam.max() == 0.0 or cam.max() >= 15 / 16  # linear upsampling x8 reaches 1 - 1/16


def test_closed_form_channel_weights_equal_autograd() -> None:
    """The heads' closed-form gradient (used by infer_batch) gives the same maps as autograd."""
    checked = 0
    for seed in range(4):
        model = random_model(seed).double()
        torch.manual_seed(200 + seed)
        x = torch.cat([random_inputs(4, seed=30 + seed), torch.randn(8, 9, 200)]).double()
        with torch.no_grad():
            a = model.encode(x)
            weights = model.sequence_channel_weights(a)
        closed_form = cam_from_activations(a, weights[:, :, None].expand_as(a), 200)
        expected = GradCAM1D(model).generate_cams(x, "sequence")
        torch.testing.assert_close(closed_form, expected, atol=1e-9, rtol=0)
        checked += int((expected.amax(dim=-1) > 0).sum())
    assert checked >= 8
