"""The official top-down pose test formulas, written out in numpy for parity tests (deep-high-resolution-net.pytorch:
``COCODataset._xywh2cs``, ``utils/transforms.get_affine_transform`` / ``flip_back`` / ``cv2.warpAffine``,
``core/inference.get_final_preds`` with ``TEST.POST_PROCESS``, ``core/function.validate``'s ``SHIFT_HEATMAP``).
Independent of hrnet_zoo: nothing here imports it."""

from __future__ import annotations

import math

import numpy as np


def xywh2cs(x, y, w, h, aspect_ratio, pixel_std=200.0):
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w / pixel_std, h / pixel_std]) * 1.25


def _third(a, b):
    d = a - b
    return b + np.array([-d[1], d[0]])


def affine_transform(center, scale, output_size, inv=False):
    """The three-point construction with rotation 0, solved as cv2.getAffineTransform does (exactly, 3 points)."""
    src_w = scale[0] * 200.0
    dst_w, dst_h = output_size
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center
    src[1] = center + np.array([0, src_w * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0, dst_w * -0.5])
    src[2] = _third(src[0], src[1])
    dst[2] = _third(dst[0], dst[1])
    a, b = (dst, src) if inv else (src, dst)
    # b_i = M @ [a_i, 1]: solve the 3x3 system for each output row
    lhs = np.concatenate([a, np.ones((3, 1))], 1)
    return np.linalg.solve(lhs, b).T  # [2, 3]


def warp_affine(image, matrix, output_size):
    """cv2.warpAffine(image, M, (w, h), INTER_LINEAR, BORDER_CONSTANT 0) for an HWC float image: each output pixel
    samples the source at M^-1 (u, v), bilinearly, neighbours outside the image counting as 0."""
    out_w, out_h = output_size
    full = np.vstack([matrix, [0, 0, 1]])
    inv = np.linalg.inv(full)[:2]
    height, width = image.shape[:2]
    out = np.zeros((out_h, out_w, image.shape[2]))
    for v in range(out_h):
        for u in range(out_w):
            sx, sy = inv @ np.array([u, v, 1.0])
            x0, y0 = math.floor(sx), math.floor(sy)
            fx, fy = sx - x0, sy - y0
            acc = np.zeros(image.shape[2])
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    yy, xx = y0 + dy, x0 + dx
                    if 0 <= yy < height and 0 <= xx < width:
                        acc += wy * wx * image[yy, xx]
            out[v, u] = acc
    return out


def get_max_preds(heatmaps):
    n, k, _, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, 2).reshape(n, k, 1)
    maxvals = np.amax(flat, 2).reshape(n, k, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float64)
    preds[:, :, 0] = preds[:, :, 0] % w
    preds[:, :, 1] = np.floor(preds[:, :, 1] / w)
    preds *= np.tile(maxvals > 0.0, (1, 1, 2))
    return preds, maxvals


def get_final_preds(heatmaps, centers, scales):
    coords, maxvals = get_max_preds(heatmaps)
    h, w = heatmaps.shape[2:]
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            hm = heatmaps[n][p]
            px = int(math.floor(coords[n][p][0] + 0.5))
            py = int(math.floor(coords[n][p][1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[n][p] += np.sign(diff) * 0.25
    preds = np.zeros_like(coords)
    for i in range(coords.shape[0]):
        trans = affine_transform(centers[i], scales[i], [w, h], inv=True)
        for p in range(coords.shape[1]):
            preds[i, p] = trans @ np.array([coords[i, p, 0], coords[i, p, 1], 1.0])
    return preds, maxvals


def flip_back_shifted(flipped, pairs):
    out = flipped[:, :, :, ::-1].copy()
    for a, b in pairs:
        tmp = out[:, a].copy()
        out[:, a] = out[:, b]
        out[:, b] = tmp
    out[:, :, :, 1:] = out.copy()[:, :, :, 0:-1]
    return out


def sliding_windows(new_h, new_w, crop):
    """HRNet-Semantic-Segmentation (HRNet-OCR) ``multi_scale_inference``'s window loop."""
    stride_h, stride_w = int(crop[0] * 2.0 / 3.0), int(crop[1] * 2.0 / 3.0)
    rows = int(np.ceil(1.0 * (new_h - crop[0]) / stride_h)) + 1
    cols = int(np.ceil(1.0 * (new_w - crop[1]) / stride_w)) + 1
    out = []
    for r in range(rows):
        for c in range(cols):
            h0, w0 = r * stride_h, c * stride_w
            out.append((h0, min(h0 + crop[0], new_h), w0, min(w0 + crop[1], new_w)))
    return out


def seg_multi_scale_inference(model, image, scales, flip, crop, mean, std, align_corners, base_size):
    """``BaseDataset.multi_scale_inference`` / ``inference`` (HRNet-Semantic-Segmentation, HRNet-OCR) for one
    normalised image ``[1, 3, H, W]`` (torch), with torch's bilinear resize standing in for cv2's INTER_LINEAR."""
    import torch
    import torch.nn.functional as F

    def inference(x):
        pred = F.interpolate(model(x), size=x.shape[-2:], mode='bilinear', align_corners=align_corners)
        if flip:
            flipped = model(torch.from_numpy(x.numpy()[:, :, :, ::-1].copy()))
            flipped = F.interpolate(flipped, size=x.shape[-2:], mode='bilinear', align_corners=align_corners)
            pred = (pred + torch.from_numpy(flipped.numpy()[:, :, :, ::-1].copy())) * 0.5
        return pred.exp()

    def pad(img, h, w):
        ph, pw = max(crop[0] - h, 0), max(crop[1] - w, 0)
        out = np.empty((img.shape[0], img.shape[1], h + ph, w + pw), dtype=img.dtype)
        out[:] = (-np.array(mean) / np.array(std)).reshape(1, -1, 1, 1)
        out[:, :, :h, :w] = img
        return out

    _, _, ori_h, ori_w = image.shape
    final = None
    for scale in scales:
        long_size = int(base_size * scale + 0.5)
        if ori_h > ori_w:
            size = (long_size, int(ori_w * long_size / ori_h + 0.5))
        else:
            size = (int(ori_h * long_size / ori_w + 0.5), long_size)
        new = F.interpolate(image, size=size, mode='bilinear', align_corners=False).numpy()
        height, width = size
        if max(height, width) <= min(crop):
            preds = inference(torch.from_numpy(pad(new, height, width)))[:, :, :height, :width]
        else:
            if height < crop[0] or width < crop[1]:
                new = pad(new, height, width)
            new_h, new_w = new.shape[-2:]
            preds, count = None, np.zeros((1, 1, new_h, new_w))
            for h0, h1, w0, w1 in sliding_windows(new_h, new_w, crop):
                window = new[:, :, h0:h1, w0:w1]
                if h1 == new_h or w1 == new_w:
                    window = pad(window, h1 - h0, w1 - w0)
                pred = inference(torch.from_numpy(window.copy())).numpy()
                if preds is None:
                    preds = np.zeros((1, pred.shape[1], new_h, new_w))
                preds[:, :, h0:h1, w0:w1] += pred[:, :, : h1 - h0, : w1 - w0]
                count[:, :, h0:h1, w0:w1] += 1
            preds = torch.from_numpy(preds / count)[:, :, :height, :width].float()
        preds = F.interpolate(preds, (ori_h, ori_w), mode='bilinear', align_corners=align_corners)
        final = preds if final is None else final + preds
    return final
