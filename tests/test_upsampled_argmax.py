"""The class ids of upsampled logits, computed at low resolution, against torch's upsampling and argmax."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hrnet_zoo.tasks.upsampled_argmax import first_argmax, upsampled_argmax


def _logits(shape: tuple[int, int, int, int], noise: float, seed: int) -> torch.Tensor:
    """Smooth class regions (a coarse random field upsampled) plus pixel noise: boundaries of every kind."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    coarse = torch.randn(n, c, max(h // 4, 1), max(w // 4, 1), generator=g) * 5
    field = F.interpolate(coarse, size=(h, w), mode='bilinear', align_corners=False)
    return field + noise * torch.randn(shape, generator=g)


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize(
    'shape, size',
    [((1, 19, 64, 128), (256, 512)), ((2, 5, 33, 65), (130, 260)), ((1, 3, 7, 9), (29, 37)),
     ((3, 4, 9, 11), (50, 31)), ((1, 6, 10, 10), (7, 13)), ((1, 19, 1, 1), (4, 4)), ((1, 2, 5, 5), (5, 5))],
)  # fmt: skip
@pytest.mark.parametrize('noise', [0.0, 0.3, 3.0])
def test_upsampled_argmax_is_the_argmax_of_torch_upsampling(shape, size, align_corners, noise):
    logits = _logits(shape, noise, seed=sum(shape) + int(10 * noise))
    want = F.interpolate(logits, size=size, mode='bilinear', align_corners=align_corners).argmax(1)
    got = upsampled_argmax(logits, size, align_corners)
    assert got.dtype == torch.int64 and got.shape == want.shape
    assert torch.equal(got, want)


def test_upsampled_argmax_takes_the_first_of_tied_classes():
    # classes 1 and 3 identical everywhere: torch's argmax (the official one) picks 1, and so must we
    logits = _logits((1, 5, 16, 24), 1.0, seed=3)
    logits[:, 3] = logits[:, 1]
    logits[:, 1:4] += 10.0  # make the tied pair win often, next to class 2
    want = F.interpolate(logits, size=(64, 96), mode='bilinear', align_corners=False).argmax(1)
    got = upsampled_argmax(logits, (64, 96), False)
    assert (want == 1).any() and not (want == 3).any()
    assert torch.equal(got, want)


def test_upsampled_argmax_with_logits_of_an_untrained_model():
    # logits in the hundreds (random weights): nothing overflows, nothing changes
    logits = _logits((1, 19, 40, 80), 30.0, seed=7) * 20
    want = F.interpolate(logits, size=(160, 320), mode='bilinear', align_corners=True).argmax(1)
    assert torch.equal(upsampled_argmax(logits, (160, 320), True), want)


def test_the_fast_argmax_is_torch_argmax_ties_included():
    scores = torch.randint(0, 4, (2, 19, 33, 47)).float()  # many ties: the first maximum must win
    assert torch.equal(first_argmax(scores), scores.argmax(1))
    assert torch.equal(first_argmax(scores, dim=0), scores.argmax(0))
    wide = torch.randn(1, 300, 5, 7)
    assert torch.equal(first_argmax(wide), wide.argmax(1))
