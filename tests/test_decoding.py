"""mmpose's UDP decoding, flip test and crop transform against the formulas written out here in numpy and loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hrnet_zoo.tasks.decoding import (
    UDP_BLUR_KERNEL_SIZE,
    apply_affine,
    blur_heatmaps,
    decode_udp,
    flip_heatmaps,
    heatmap_maximum,
    input_to_image,
    invert_affine,
    refine_dark_udp,
    udp_warp_matrix,
)

INPUT = (192, 256)  # (w, h) of the 256x192 configs
HEATMAP = (48, 64)
EPS32 = float(np.finfo(np.float32).eps)


def _gaussian(mu_x: float, mu_y: float, size: tuple[int, int] = HEATMAP, sigma: float = 2.0) -> np.ndarray:
    """exp(-d^2 / (2 sigma^2)) on the pixel grid, the UDP training target, untruncated."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * sigma**2))


def _kernel(size: int) -> np.ndarray:
    """cv2.getGaussianKernel(size, 0)."""
    fixed = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16],
             7: [1 / 32, 3.5 / 32, 7 / 32, 9 / 32, 7 / 32, 3.5 / 32, 1 / 32]}  # fmt: skip
    if size in fixed:
        return np.array(fixed[size])
    sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8
    weights = np.array([math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma * sigma)) for i in range(size)])
    return weights / weights.sum()


def _blur(heatmap: np.ndarray, size: int) -> np.ndarray:
    """Zero padding of (size - 1) / 2, the outer-product kernel summed offset by offset, rescaled to the max."""
    kernel = np.outer(_kernel(size), _kernel(size))
    border = (size - 1) // 2
    h, w = heatmap.shape
    padded = np.zeros((h + 2 * border, w + 2 * border))
    padded[border : border + h, border : border + w] = heatmap
    out = np.zeros((h, w))
    for dy in range(size):
        for dx in range(size):
            out += kernel[dy, dx] * padded[dy : dy + h, dx : dx + w]
    return out * (heatmap.max() / out.max())


def _argmax(heatmap: np.ndarray) -> tuple[int, int, float]:
    best = (-1, -1, -math.inf)
    for y in range(heatmap.shape[0]):
        for x in range(heatmap.shape[1]):
            if heatmap[y, x] > best[2]:
                best = (x, y, float(heatmap[y, x]))
    return best if best[2] > 0 else (-1, -1, best[2])


def _newton(heatmap: np.ndarray, x: int, y: int, size: int = UDP_BLUR_KERNEL_SIZE) -> tuple[float, float]:
    """refine_keypoints_dark_udp for one map: finite differences of log(clip(blur)) with the edge repeated."""
    log = np.log(np.clip(_blur(heatmap, size), 1e-3, 50.0))
    h, w = log.shape

    def f(ox: int, oy: int) -> float:
        return float(log[min(max(y + oy, 0), h - 1), min(max(x + ox, 0), w - 1)])

    grad = np.array([(f(1, 0) - f(-1, 0)) / 2, (f(0, 1) - f(0, -1)) / 2])
    dxx = f(1, 0) - 2 * f(0, 0) + f(-1, 0)
    dyy = f(0, 1) - 2 * f(0, 0) + f(0, -1)
    dxy = (f(1, 1) - f(1, 0) - f(0, 1) + 2 * f(0, 0) - f(-1, 0) - f(0, -1) + f(-1, -1)) / 2
    step = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]) + EPS32 * np.eye(2)) @ grad
    return x - step[0], y - step[1]


def _decode_by_hand(maps: np.ndarray, size: tuple[int, int] = INPUT) -> tuple[np.ndarray, np.ndarray]:
    n, k, h, w = maps.shape
    keypoints, scores = np.zeros((n, k, 2)), np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            x, y, score = _argmax(maps[i, j])
            keypoints[i, j] = _newton(maps[i, j], x, y) if x >= 0 else (x, y)
            keypoints[i, j] *= (size[0] / (w - 1), size[1] / (h - 1))
            scores[i, j] = score
    return keypoints, scores


@pytest.mark.parametrize('mu', [(20.3, 31.7), (24.0, 32.0), (10.55, 50.45), (5.9, 4.2), (41.25, 58.8)])
def test_decode_udp_recovers_a_subpixel_centre(mu):
    maps = torch.from_numpy(_gaussian(*mu)[None, None])
    keypoints, scores = decode_udp(maps, INPUT)
    assert keypoints.shape == (1, 1, 2) and keypoints.dtype == torch.float64
    assert scores.shape == (1, 1, 1) and scores.dtype == torch.float32
    # back to heatmap pixels with the codec's own factor: input_size / (heatmap_size - 1)
    in_heatmap = keypoints[0, 0].numpy() / (INPUT[0] / (HEATMAP[0] - 1), INPUT[1] / (HEATMAP[1] - 1))
    assert np.abs(in_heatmap - mu).max() < 0.05
    assert scores.item() == pytest.approx(float(maps.max()), abs=1e-6)


@pytest.mark.parametrize('sigma, blur', [(2.0, 11), (3.0, 11), (3.0, 17)])
def test_udp_keypoints_are_unbiased_in_crop_pixels(sigma, blur):
    # UDPHeatmap.encode puts a crop pixel q at q / scale_factor, scale_factor = (w_in - 1) / (w_hm - 1) ...
    size_in, size_hm = ((192, 256), (48, 64)) if sigma == 2 else ((288, 384), (72, 96))
    factor = np.array([(size_in[0] - 1) / (size_hm[0] - 1), (size_in[1] - 1) / (size_hm[1] - 1)])
    for q in [(100.3, 140.9), (57.0, 200.25), (150.6, 30.1)]:  # 4+ heatmap px from the border
        mu = np.array(q) / factor
        maps = torch.from_numpy(_gaussian(*mu, size=size_hm, sigma=sigma)[None, None])
        keypoints, _ = decode_udp(maps, size_in, blur_kernel_size=blur)
        # ... and decode's input / (w_hm - 1) space is q scaled by w_in / (w_in - 1)
        crop = keypoints[0, 0].numpy() * (np.array(size_in) - 1) / np.array(size_in)
        assert np.abs(crop - q).max() < 0.05 * factor.max()


def test_the_newton_step_equals_the_one_written_out():
    g = np.random.default_rng(0)
    maps = np.stack([_gaussian(17.4, 22.6) * 0.8, _gaussian(30.2, 40.9, sigma=3.0)])
    maps = maps + 0.05 * g.random(maps.shape)
    maps = np.stack([maps, maps[::-1] * 0.5])  # [2, 2, 64, 48]
    want_keypoints, want_scores = _decode_by_hand(maps)
    keypoints, scores = decode_udp(torch.from_numpy(maps), INPUT)
    np.testing.assert_allclose(keypoints.numpy(), want_keypoints, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores[..., 0].numpy(), want_scores, rtol=0, atol=1e-6)
    # the refinement alone, in heatmap pixels, on one joint
    x, y, _ = _argmax(maps[0, 1])
    refined = refine_dark_udp(torch.tensor([[[x, y]]], dtype=torch.float64), torch.from_numpy(maps[:1, 1:]))
    np.testing.assert_allclose(refined[0, 0].numpy(), _newton(maps[0, 1], x, y), rtol=0, atol=1e-5)


@pytest.mark.parametrize('size', [1, 3, 5, 7, 11, 17])
def test_blur_is_cv2s_zero_padded_gaussian_rescaled_to_the_maximum(size):
    heatmap = _gaussian(12.3, 9.8, size=(20, 16)) + 0.1 * np.random.default_rng(size).random((16, 20))
    got = blur_heatmaps(torch.from_numpy(heatmap[None, None]), size)[0, 0].numpy()
    np.testing.assert_allclose(got, _blur(heatmap, size), rtol=0, atol=1e-12)


@pytest.mark.parametrize('mu', [(0.0, 20.0), (47.0, 63.0), (0.0, 0.0), (47.3, 5.0), (-0.4, 30.2)])
def test_a_maximum_on_the_border_uses_the_repeated_edge(mu):
    maps = _gaussian(*mu)[None, None]
    keypoints, _ = decode_udp(torch.from_numpy(maps), INPUT)
    want, _ = _decode_by_hand(maps)
    assert torch.isfinite(keypoints).all()
    np.testing.assert_allclose(keypoints.numpy(), want, rtol=0, atol=1e-5)
    in_heatmap = keypoints[0, 0].numpy() / (INPUT[0] / (HEATMAP[0] - 1), INPUT[1] / (HEATMAP[1] - 1))
    assert np.abs(in_heatmap - mu).max() < 1.0  # the repeated edge pulls up to half a pixel outward


def test_an_empty_map_scores_zero_without_nan_and_leaves_the_others_alone():
    maps = np.stack([_gaussian(20.3, 31.7), np.zeros(HEATMAP[::-1]), -_gaussian(10.0, 10.0)])[None]
    keypoints, scores = decode_udp(torch.from_numpy(maps), INPUT)
    assert torch.isfinite(keypoints).all() and torch.isfinite(scores).all()
    assert scores[0, 1, 0] == 0 and scores[0, 2, 0] == 0  # the maximum of -gaussian: 0 far from its centre
    minus_one = torch.tensor([-INPUT[0] / (HEATMAP[0] - 1), -INPUT[1] / (HEATMAP[1] - 1)], dtype=torch.float64)
    assert torch.equal(keypoints[0, 1], minus_one) and torch.equal(keypoints[0, 2], minus_one)
    alone, _ = decode_udp(torch.from_numpy(maps[:, :1]), INPUT)
    assert torch.equal(keypoints[:, :1], alone)
    assert torch.equal(blur_heatmaps(torch.zeros(1, 1, 8, 8)), torch.zeros(1, 1, 8, 8, dtype=torch.float64))


def test_the_maximum_is_the_first_in_row_major_order():
    maps = torch.zeros(1, 2, 5, 6)
    maps[0, 0, 1, 4] = maps[0, 0, 3, 2] = 1.0
    maps[0, 1, 2, 1] = maps[0, 1, 2, 5] = 0.5
    coords, values = heatmap_maximum(maps)
    assert coords.tolist() == [[[4.0, 1.0], [1.0, 2.0]]]
    assert values[..., 0].tolist() == [[1.0, 0.5]]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r'\[N, K, H, W\]'):
        decode_udp(torch.zeros(17, 64, 48), INPUT)
    with pytest.raises(ValueError, match='2x2'):
        decode_udp(torch.ones(1, 1, 64, 1), INPUT)
    with pytest.raises(ValueError, match='odd'):
        blur_heatmaps(torch.ones(1, 1, 8, 8), 4)


PAIRS = [(1, 2), (3, 4), (5, 6)]


def _flip_by_hand(maps: np.ndarray, pairs, shift: bool) -> np.ndarray:
    swap = {}
    for left, right in pairs:
        swap[left], swap[right] = right, left
    n, k, h, w = maps.shape
    out = np.zeros_like(maps)
    for i in range(n):
        for j in range(k):
            for y in range(h):
                for x in range(w):
                    source = w - 1 - x if not shift else w - 1 - max(x - 1, 0)
                    out[i, j, y, x] = maps[i, swap.get(j, j), y, source]
    return out


@pytest.mark.parametrize('shift', [False, True])
def test_flip_mirrors_and_swaps_the_pairs(shift):
    maps = np.random.default_rng(1).random((2, 7, 6, 5))
    got = flip_heatmaps(torch.from_numpy(maps), PAIRS, shift=shift)
    assert got.dtype == torch.float64 and got.shape == maps.shape
    np.testing.assert_array_equal(got.numpy(), _flip_by_hand(maps, PAIRS, shift))


def test_unshifted_flip_is_an_exact_involution():
    maps = torch.rand(3, 7, 8, 6)
    assert torch.equal(flip_heatmaps(flip_heatmaps(maps, PAIRS, False), PAIRS, False), maps)
    assert torch.equal(flip_heatmaps(maps, [], False), maps.flip(-1))


def test_udp_flip_test_of_a_mirrored_peak_is_unbiased():
    # a peak at crop pixel q seen in the flipped crop at w - 1 - q: flipped back without a shift it lands on q
    mu = 17.3
    flipped = torch.from_numpy(_gaussian(HEATMAP[0] - 1 - mu, 30.0)[None, None])
    keypoints, _ = decode_udp(flip_heatmaps(flipped, [], shift=False), INPUT)
    assert keypoints[0, 0, 0].item() * (HEATMAP[0] - 1) / INPUT[0] == pytest.approx(mu, abs=0.05)


def _rotation(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@pytest.mark.parametrize('rot', [0.0, 30.0, -75.0])
def test_the_udp_warp_sends_the_box_corners_to_the_first_and_last_pixels(rot):
    center, scale, (w, h) = np.array([311.5, 207.25]), np.array([150.0, 200.0]), INPUT
    matrix = udp_warp_matrix(torch.tensor(center), torch.tensor(scale), rot, (w, h))
    assert matrix.shape == (1, 2, 3) and matrix.dtype == torch.float64
    # UDP: a box corner center + R^T d, d = (+-scale_w / 2, +-scale_h / 2), goes to (w - 1) / scale_w * (d + scale / 2)
    corners, targets = [], []
    for sx in (-1, 1):
        for sy in (-1, 1):
            d = np.array([sx * scale[0] / 2, sy * scale[1] / 2])
            corners.append(center + _rotation(rot).T @ d)
            targets.append([(w - 1) / scale[0] * (d[0] + scale[0] / 2), (h - 1) / scale[1] * (d[1] + scale[1] / 2)])
    got = apply_affine(torch.tensor(np.array(corners))[None], matrix)[0].numpy()
    np.testing.assert_allclose(got, targets, rtol=0, atol=1e-9)
    if rot == 0:
        np.testing.assert_allclose(got, [[0, 0], [0, h - 1], [w - 1, 0], [w - 1, h - 1]], rtol=0, atol=1e-9)
    # and back
    back = apply_affine(torch.tensor(got)[None], udp_warp_matrix(center, scale, rot, (w, h), inverse=True))[0]
    np.testing.assert_allclose(back.numpy(), corners, rtol=0, atol=1e-9)


def test_warp_matrices_are_batched_per_box():
    centers, scales = torch.tensor([[10.0, 20.0], [300.0, 40.0]]), torch.tensor([[30.0, 40.0], [90.0, 120.0]])
    rots = [0.0, 45.0]
    both = udp_warp_matrix(centers, scales, rots, INPUT)
    for i in range(2):
        assert torch.equal(both[i], udp_warp_matrix(centers[i], scales[i], rots[i], INPUT)[0])
    identity = torch.cat([torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)], 1)
    inverse = invert_affine(both)
    composed = inverse[:, :, :2] @ both[:, :, :2], inverse[:, :, :2] @ both[:, :, 2:] + inverse[:, :, 2:]
    torch.testing.assert_close(torch.cat(composed, -1), identity.expand(2, -1, -1), rtol=0, atol=1e-12)


def test_input_to_image_is_the_topdown_formula_and_the_inverse_udp_warp():
    g = np.random.default_rng(2)
    center, scale = g.uniform(50, 500, (3, 2)), g.uniform(40, 300, (3, 2))
    keypoints = g.uniform(0, 190, (3, 5, 2))
    got = input_to_image(torch.from_numpy(keypoints), torch.from_numpy(center), torch.from_numpy(scale), INPUT)
    for i in range(3):
        for j in range(5):
            for a in range(2):
                want = keypoints[i, j, a] / INPUT[a] * scale[i, a] + center[i, a] - 0.5 * scale[i, a]
                assert got[i, j, a].item() == pytest.approx(want, abs=1e-9)
    # the codec's input space times (w - 1) / w is the UDP crop pixel, which the inverse warp takes to the same place
    crop = torch.from_numpy(keypoints * (np.array(INPUT) - 1) / np.array(INPUT))
    inverse = udp_warp_matrix(torch.from_numpy(center), torch.from_numpy(scale), 0.0, INPUT, inverse=True)
    torch.testing.assert_close(apply_affine(crop, inverse), got, rtol=0, atol=1e-9)


def test_an_image_point_comes_back_through_crop_heatmap_and_decode():
    center, scale = torch.tensor([[250.0, 180.0]]), torch.tensor([[120.0, 160.0]])
    point = np.array([231.37, 214.81])
    crop = apply_affine(torch.tensor(point)[None, None], udp_warp_matrix(center, scale, 0.0, INPUT))[0, 0].numpy()
    mu = crop * (np.array(HEATMAP) - 1) / (np.array(INPUT) - 1)
    keypoints, _ = decode_udp(torch.from_numpy(_gaussian(*mu)[None, None]), INPUT)
    back = input_to_image(keypoints, center, scale, INPUT)[0, 0].numpy()
    assert np.abs(back - point).max() < 0.05 * 160 / (HEATMAP[1] - 1)
