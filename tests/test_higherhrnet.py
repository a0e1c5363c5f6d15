"""HigherHRNet: the head's layout against the official config numbers, the paper's params and GFLOPs, the two outputs,
and bottom-up grouping (hrnet_zoo.tasks.bottomup) on synthetic heatmaps and tags whose people are known."""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import hrnet_zoo  # noqa: F401  (registers the models)
import hrnet_zoo.models.higherhrnet  # noqa: F401  TEMP until models/__init__ imports it
from hrnet_zoo.data.keypoints import KEYPOINTS
from hrnet_zoo.stats import arch_stats
from hrnet_zoo.tasks import bottomup, inputs
from hrnet_zoo.tasks.bottomup import GroupingParams, group_people, match_by_tag, multi_scale_size, refine_person

pytestmark = pytest.mark.usefixtures('one_thread')

K = 17
# the official experiments/coco/higher_hrnet/{w32_512,w48_640}_adam_lr1e-3.yaml: width C, DECONV.NUM_CHANNELS,
# DATASET.INPUT_SIZE
CONFIGS = {'w32': (32, 32, 512), 'w48': (48, 48, 640)}


# -- the model --------------------------------------------------------------------------------------------------


def _bn(prefix: str, chs: int) -> dict[str, tuple[int, ...]]:
    return {f'{prefix}.{n}': (chs,) for n in ('weight', 'bias', 'running_mean', 'running_var')} | {
        f'{prefix}.num_batches_tracked': ()
    }


def _official_head_layout(width: int, deconv: int, joints: int = K) -> dict[str, tuple[int, ...]]:
    """pose_higher_hrnet.py's head with TAG_PER_JOINT, WITH_AE_LOSS [True, False], CAT_OUTPUT [True], one 4x4
    deconvolution and NUM_BASIC_BLOCKS 4, written out from those numbers."""
    layout = {
        'final_layers.0.weight': (2 * joints, width, 1, 1),
        'final_layers.0.bias': (2 * joints,),
        'deconv_layers.0.0.0.weight': (width + 2 * joints, deconv, 4, 4),  # ConvTranspose2d: (in, out, k, k)
        **_bn('deconv_layers.0.0.1', deconv),
        'final_layers.1.weight': (joints, deconv, 1, 1),
        'final_layers.1.bias': (joints,),
    }
    for block in range(1, 5):
        for conv in (1, 2):
            layout[f'deconv_layers.0.{block}.0.conv{conv}.weight'] = (deconv, deconv, 3, 3)
            layout |= _bn(f'deconv_layers.0.{block}.0.bn{conv}', deconv)
    return layout


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _head(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {k: v for k, v in shapes.items() if k.startswith(('final_layers.', 'deconv_layers.'))}


@pytest.mark.parametrize('width', list(CONFIGS))
def test_head_keys_and_shapes_are_the_official_configs(width):
    chs, deconv, _ = CONFIGS[width]
    model = timm.create_model(f'higherhrnet_{width}', device='meta')
    shapes = _shapes(model)
    head = _head(shapes)
    assert head == _official_head_layout(chs, deconv)
    # everything else is our HRNetV1 backbone of that width, key for key (its pose head aside)
    v1 = _shapes(timm.create_model(f'hrnetv1_{width}', device='meta'))
    assert {k: v for k, v in shapes.items() if k not in head} == {
        k: v for k, v in v1.items() if not k.startswith('final_layer.')
    }


def test_joint_count_and_shared_tag_change_the_head_as_the_official_code():
    crowd = timm.create_model('higherhrnet_w32', num_classes=14, device='meta')  # CrowdPose: 14 joints
    assert _head(_shapes(crowd)) == _official_head_layout(32, 32, joints=14)
    shared = _shapes(timm.create_model('higherhrnet_w32', tag_per_joint=False, device='meta'))
    assert shared['final_layers.0.weight'] == (K + 1, 32, 1, 1)  # one tag map for all joints
    assert shared['deconv_layers.0.0.0.weight'] == (32 + K + 1, 32, 4, 4)


def _official_multiply_adds(model: nn.Module, size: int) -> int:
    """The official lib/utils/utils.py get_model_summary: for every module whose class name holds 'Conv', its weight's
    size times its output's H x W (for a ConvTranspose2d, whose weight is read once per *input* pixel, that is 4x its
    multiply-adds at stride 2)."""
    total = 0

    def hook(module, args, output):
        nonlocal total
        total += module.weight.numel() * output.shape[-2] * output.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if 'Conv' in type(m).__name__]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device='meta'))
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize(('width', 'paper_params', 'paper_gflops'), [('w32', 28.6, 47.9), ('w48', 63.8, 154.3)])
def test_params_and_gflops_are_the_papers(width, paper_params, paper_gflops):
    """The paper's (and the official README's) GFLOPs are the official summary's multiply-adds / 10^9, not / 2^30 as
    in the HRNet tables, and that summary counts the 4x4 deconvolution as weight size x *output* pixels, 4x its
    multiply-adds. hrnet_zoo.stats (every convolution's multiply-adds / 2^30, as torch counts them) gives 43.03 for
    W32 at 512 and 139.20 for W48 at 640; the two conventions differ by exactly three times the deconvolution's
    multiply-adds (in x out x 16 per pixel at 1/4)."""
    chs, deconv, size = CONFIGS[width]
    stats = arch_stats(f'higherhrnet_{width}')
    assert stats.input_size == (3, size, size)
    assert round(stats.params / 1e6, 1) == paper_params
    official = _official_multiply_adds(timm.create_model(f'higherhrnet_{width}', device='meta'), size)
    assert round(official / 1e9, 1) == paper_gflops
    deconv_macs = (chs + 2 * K) * deconv * 4 * 4 * (size // 4) ** 2
    assert round(stats.gflops * 2**30) + 3 * deconv_macs == official


@pytest.fixture(scope='module')
def w32():
    torch.manual_seed(0)
    return timm.create_model('higherhrnet_w32').eval()


@pytest.mark.parametrize(('height', 'width'), [(128, 128), (128, 192), (96, 160)])
def test_outputs_at_a_quarter_and_a_half(w32, height, width):
    with torch.no_grad():
        out = w32(torch.randn(1, 3, height, width))
    assert isinstance(out, tuple) and len(out) == 2
    quarter, half = out
    assert quarter.shape == (1, 2 * K, height // 4, width // 4)
    assert half.shape == (1, K, height // 2, width // 2)


def test_traces_to_the_same_outputs(w32):
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # trace's deprecation and its warning about the input check
        traced = torch.jit.trace(w32, x, check_trace=False)
        for got, want in zip(traced(x), w32(x)):
            torch.testing.assert_close(got, want)


def test_registration_cfgs_and_decoder():
    assert {'higherhrnet_w32', 'higherhrnet_w48'} <= set(timm.list_models('higherhrnet*'))
    model = timm.create_model('higherhrnet_w48', device='meta')
    cfg = model.pretrained_cfg
    assert cfg['input_size'] == (3, 640, 640) and not any(cfg.get(k) for k in ('url', 'hf_hub_id', 'file'))
    assert (cfg['mean'], cfg['std']) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert timm.create_model('higherhrnet_w32', device='meta').pretrained_cfg['input_size'] == (3, 512, 512)
    assert inputs.model_decoder(model) == 'bottomup_heatmaps_tags'
    assert inputs.head_task(model) == 'keypoint-detection'
    with pytest.raises(ValueError, match='topdown_heatmaps'):  # the top-down task refuses it
        hrnet_zoo.tasks.estimate_pose(model, torch.rand(3, 32, 32), boxes=[0, 0, 8, 8])
    with pytest.raises(ValueError, match='no published weights'):
        timm.create_model('higherhrnet_w32', pretrained=True)


def test_features_only_gives_the_backbone():
    features = timm.create_model('higherhrnet_w32', features_only=True, device='meta')
    assert features.feature_info.channels() == [64, 32, 64, 128, 256]
    assert not any(k.startswith(('final_layers', 'deconv_layers')) for k in features.state_dict())


# -- grouping ---------------------------------------------------------------------------------------------------

H = W = 64


def _peak(maps: torch.Tensor, joint: int, x: int, y: int, value: float = 1.0) -> None:
    """A 3x3 bump at (x, y), its right and lower neighbours higher than the left and upper ones."""
    maps[joint, y, x] = value
    maps[joint, y, x + 1], maps[joint, y, x - 1] = 0.6 * value, 0.4 * value
    maps[joint, y + 1, x], maps[joint, y - 1, x] = 0.5 * value, 0.3 * value


def _scene(people: list[tuple[list[tuple[int, int] | None], float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps [K, H, W] and tags [K, H, W, 1] with a peak per listed joint and that person's tag in a 5x5 patch
    around it (joints of one person at distinct pixels)."""
    heatmaps, tags = torch.zeros(K, H, W), torch.zeros(K, H, W, 1)
    for joints, tag in people:
        for k, at in enumerate(joints):
            if at is not None:
                x, y = at
                _peak(heatmaps, k, x, y)
                tags[k, y - 2 : y + 3, x - 2 : x + 3] = tag
    return heatmaps, tags


def _body(x0: int, y0: int) -> list[tuple[int, int]]:
    """17 joint positions, 3 px apart in a 6 x 3 grid, from (x0, y0)."""
    return [(x0 + 3 * (k % 6), y0 + 3 * (k // 6)) for k in range(K)]


def _by_tag(people: np.ndarray) -> dict[float, np.ndarray]:
    return {round(float(p[p[:, 2] > 0][0, 3]), 3): p for p in people}


def test_grouping_finds_exactly_the_people_of_the_scene():
    bodies = {0.0: _body(4, 4), 3.0: _body(30, 8), -4.0: _body(10, 40)}
    heatmaps, tags = _scene([(body, tag) for tag, body in bodies.items()])
    people, scores = group_people(heatmaps, tags, adjust=False, refine=False)
    assert len(people) == 3
    found = _by_tag(people)
    assert set(found) == set(bodies)
    for tag, body in bodies.items():
        np.testing.assert_array_equal(found[tag][:, :2], np.array(body, dtype=np.float32))
        np.testing.assert_array_equal(found[tag][:, 2], np.ones(K, dtype=np.float32))
    np.testing.assert_array_equal(scores, np.ones(3, dtype=np.float32))


def test_adjust_moves_half_a_pixel_and_a_quarter_toward_the_higher_neighbour():
    body = _body(4, 4)
    heatmaps, tags = _scene([(body, 0.0)])
    (person,), _ = group_people(heatmaps, tags, refine=False)
    # right neighbour > left: x + 0.5 + 0.25; lower > upper: y + 0.5 + 0.25
    np.testing.assert_allclose(person[:, :2], np.array(body) + 0.75)
    heatmaps[0, body[0][1], body[0][0] + 1] = 0.2  # now the left neighbour (0.4) is higher
    heatmaps[0, body[0][1] - 1, body[0][0]] = 0.5  # and the upper one equals the lower: the official "else", -0.25
    (person,), _ = group_people(heatmaps, tags, refine=False)
    np.testing.assert_allclose(person[0, :2], np.array(body[0]) + [0.25, 0.25])


@pytest.mark.parametrize(('gap', 'split'), [(1.2, True), (0.8, False)])
def test_tags_farther_apart_than_the_threshold_are_two_people(gap, split):
    """A has the head and shoulders, B only what A lacks: B's joints join A where their tags are within 1.0."""
    a = [at if k < 7 else None for k, at in enumerate(_body(4, 4))]
    b = [None if k < 7 else at for k, at in enumerate(_body(30, 30))]
    heatmaps, tags = _scene([(a, 0.0), (b, gap)])
    people, _ = group_people(heatmaps, tags, adjust=False, refine=False)
    assert len(people) == (2 if split else 1)
    if split:
        found = _by_tag(people)
        assert (found[0.0][:, 2] > 0).sum() == 7 and (found[gap][:, 2] > 0).sum() == 10
    else:
        assert (people[0][:, 2] > 0).all()


def test_two_full_people_with_close_tags_stay_apart():
    bodies = {0.0: _body(4, 4), 1.1: _body(30, 30)}
    people, _ = group_people(*_scene([(body, tag) for tag, body in bodies.items()]), adjust=False, refine=False)
    found = _by_tag(people)
    assert len(people) == 2 and set(found) == set(bodies)
    for tag, body in bodies.items():
        np.testing.assert_array_equal(found[tag][:, :2], np.array(body, dtype=np.float32))


def test_detection_value_breaks_ties_of_the_rounded_distance():
    """One person (tag 0); two left eyes at tag distances 0.1 (score 0.3) and 0.4 (score 0.9): both round to 0, so
    with USE_DETECTION_VAL the stronger joins the person, without it the nearer."""
    tag_k = np.zeros((K, 2, 1), dtype=np.float32)
    loc_k = np.zeros((K, 2, 2), dtype=np.int64)
    val_k = np.zeros((K, 2), dtype=np.float32)
    val_k[0, 0], loc_k[0, 0] = 1.0, (5, 5)
    tag_k[1, :, 0], val_k[1], loc_k[1] = (0.1, 0.4), (0.3, 0.9), ((10, 10), (20, 20))
    for use, joined in ((True, (20, 20)), (False, (10, 10))):
        people = match_by_tag(tag_k, loc_k, val_k, GroupingParams(use_detection_val=use))
        assert len(people) == 2
        with_nose = people[people[:, 0, 2] > 0][0]
        assert tuple(with_nose[1, :2]) == joined


def test_ignore_too_much_stops_adding_once_max_people_exist():
    heatmaps, tags = _scene([(_body(4, 4), 0.0), (_body(30, 4), 3.0)])
    heatmaps[0, :, 25:] = 0  # no nose for the second person: it only starts at the left eye
    kept, _ = group_people(heatmaps, tags, GroupingParams(max_people=2), adjust=False, refine=False)
    dropped, _ = group_people(heatmaps, tags, GroupingParams(max_people=2, ignore_too_much=True), adjust=False,
                              refine=False)  # fmt: skip
    # with IGNORE_TOO_MUCH, once the left eyes make two people (max_people) every later joint is skipped
    assert [int((p[:, 2] > 0).sum()) for p in dropped] == [2, 1]
    assert [int((p[:, 2] > 0).sum()) for p in kept] == [17, 16]  # the official default goes on


def test_refine_fills_a_missing_joint_from_the_persons_tag_and_leaves_an_empty_map_alone():
    body = _body(4, 4)
    occluded = [at if k not in (9, 10) else None for k, at in enumerate(body)]
    heatmaps, tags = _scene([(occluded, 0.0)])
    # joint 9: a weak peak (below the threshold) with the person's tag, a stronger one with a tag 3 away
    heatmaps[9, 40, 40], tags[9, 40, 40] = 0.05, 0.0
    heatmaps[9, 50, 20], tags[9, 50, 20] = 0.08, 3.0
    # joint 10: its map is zero everywhere
    (raw,), scores = group_people(heatmaps, tags, refine=False)
    (person,), refined_scores = group_people(heatmaps, tags)
    assert raw[9, 2] == raw[10, 2] == 0
    np.testing.assert_allclose(person[9, :3], [40 + 0.5 - 0.25, 40 + 0.5 - 0.25, 0.05], rtol=1e-6)
    assert person[10, 2] == 0 and tuple(person[10, :2]) == (0, 0)
    np.testing.assert_array_equal(person[np.r_[0:9, 11:K]], raw[np.r_[0:9, 11:K]])
    # the person's score is taken before refining: the mean over all 17 joints, the two missing ones as 0
    np.testing.assert_allclose(scores, [15 / 17], rtol=1e-6)
    np.testing.assert_array_equal(refined_scores, scores)


def test_refine_on_an_array_needs_a_found_joint_only():
    heatmaps = np.zeros((K, 8, 8), dtype=np.float32)
    tags = np.zeros((K, 8, 8, 1), dtype=np.float32)
    person = np.zeros((K, 4), dtype=np.float32)
    person[0] = (3, 3, 0.5, 0)
    heatmaps[1, 6, 2] = 0.01
    out = refine_person(heatmaps, tags, person)
    np.testing.assert_allclose(out[1, :3], [2 + 0.5 - 0.25, 6 + 0.5 - 0.25, 0.01], rtol=1e-6)


def _reference_match(tag_k, loc_k, val_k, threshold=0.1, tag_threshold=1.0):
    """Grouping written independently: joint by joint in the COCO order, the assignment of detections to the people
    so far that minimises the summed tag distance, found by trying every injective map (rows <= 4)."""
    order = bottomup.COCO_JOINT_ORDER
    people: list[dict] = []  # {'joints': {k: (x, y, v)}, 'tags': [t, ...]}
    for i, k in enumerate(order):
        dets = [(tuple(loc_k[k, m]), float(val_k[k, m]), tag_k[k, m]) for m in range(len(val_k[k]))
                if val_k[k, m] > threshold]  # fmt: skip
        if not dets:
            continue
        if i == 0 or not people:
            people += [{'joints': {k: (*loc, v)}, 'tags': [t]} for loc, v, t in dets]
            continue
        means = [np.mean(p['tags'], axis=0) for p in people]
        dist = [[float(np.linalg.norm(t.astype(np.float64) - m)) for m in means] for _, _, t in dets]
        slots = list(range(len(people))) + [None] * len(dets)  # None: a new person
        best = min(
            itertools.permutations(slots, len(dets)),
            key=lambda choice: sum(1e10 if c is None else dist[r][c] for r, c in enumerate(choice)),
        )
        for r, c in enumerate(best):
            loc, v, t = dets[r]
            if c is not None and dist[r][c] < tag_threshold:
                people[c]['joints'][k] = (*loc, v)
                people[c]['tags'].append(t)
            else:
                people.append({'joints': {k: (*loc, v)}, 'tags': [t]})
    return sorted(tuple(sorted(p['joints'].items())) for p in people)


@pytest.mark.parametrize('seed', range(6))
def test_matching_agrees_with_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    m = 3
    # 2-D tags (plain and flipped, as the flip test gives): with 1-D tags, sums of distances tie exactly and often,
    # and the two searches may then pick different optimal assignments
    tag_k = rng.uniform(0, 3, (K, m, 2)).astype(np.float32)
    loc_k = rng.integers(0, 64, (K, m, 2))
    val_k = rng.uniform(0, 1, (K, m)).astype(np.float32)
    people = match_by_tag(tag_k, loc_k, val_k, GroupingParams(use_detection_val=False))
    got = sorted(
        tuple((k, (float(p[k, 0]), float(p[k, 1]), float(p[k, 2]))) for k in range(K) if p[k, 2] > 0) for p in people
    )
    want = [tuple((k, (float(x), float(y), float(np.float32(v)))) for k, (x, y, v) in p)
            for p in _reference_match(tag_k, loc_k, val_k)]  # fmt: skip
    assert got == sorted(want)
    assert len(people) > 4  # not every joint joined one person: the thresholds were exercised


def test_missing_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'scipy.optimize', None)
    with pytest.raises(ImportError, match=r'hrnet_zoo\[bottomup\]'):
        match_by_tag(np.zeros((K, 1, 1)), np.zeros((K, 1, 2)), np.ones((K, 1)))


# -- the whole image --------------------------------------------------------------------------------------------


def test_multi_scale_size_is_the_officials():
    # 640 x 480 at 512: the short side 512, the long one 640 * 512 / 480 = 682.7 -> 704; scale in units of 200 px
    size, center, scale = multi_scale_size(480, 640, 512)
    assert size == (704, 512) and center == (320.0, 240.0)
    np.testing.assert_allclose(scale, (704 / 512 * 480 / 200, 480 / 200))
    # portrait 375 x 500 (w x h) at 512 and scale 2 of min scale 1: the short side 1024, the long 704 * 2
    size, center, scale = multi_scale_size(500, 375, 512, 2.0)
    assert size == (1024, 1408) and center == (188.0, 250.0)
    np.testing.assert_allclose(scale, (375 / 200, 1408 / 1024 * 375 / 200))
    # scales 0.5 .. 2 with min 0.5: the sizes grow from the min scale's multiple of 64
    assert multi_scale_size(480, 640, 512, 1.0, 0.5)[0] == (768, 512)


class _BlobReader(nn.Module):
    """A stand-in for HigherHRNet that reads a synthetic image: every joint's heatmap is the red channel and every
    tag the green channel times 10, at 1/4 (heatmaps and tags) and 1/2 (heatmaps), so each red blob is a person
    with all 17 joints at its center and the green value of its patch as tag."""

    head = 'v1'
    decoder = 'bottomup_heatmaps_tags'
    num_classes = K

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.pretrained_cfg = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=(3, input_size, input_size))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(tuple(x.shape))
        quarter, half = F.avg_pool2d(x, 4), F.avg_pool2d(x, 2)
        heat4, tag4 = quarter[:, :1].expand(-1, K, -1, -1), 10 * quarter[:, 1:2].expand(-1, K, -1, -1)
        return torch.cat([heat4, tag4], 1), half[:, :1].expand(-1, K, -1, -1)


def _blob_image(height: int, width: int, blobs: list[tuple[float, float, float]]) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing='ij')  # fmt: skip
    image = torch.zeros(3, height, width)
    for x, y, green in blobs:
        d2 = (xs - x) ** 2 + (ys - y) ** 2
        image[0] += torch.exp(-d2 / (2 * 6.0**2))
        image[1] += green * (d2 < 15**2)
    return image


class _Constants(nn.Module):
    """Every map a constant: heatmap k is a[k] at 1/4 and b[k] at 1/2, tag k is t[k], whatever the input."""

    head = 'v1'
    decoder = 'bottomup_heatmaps_tags'

    def __init__(self, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b, self.t = a, b, t
        self.pretrained_cfg = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=(3, 64, 64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        quarter = torch.cat([self.a, self.t]).view(1, -1, 1, 1).expand(n, -1, h // 4, w // 4)
        return quarter, self.b.view(1, -1, 1, 1).expand(n, -1, h // 2, w // 2)


def test_maps_average_both_outputs_and_the_flip_with_the_mirror_joints():
    a, b, t = torch.rand(K), torch.rand(K), torch.rand(K) * 5
    flip_index = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # the official FLIP_CONFIG['COCO']
    pixels = torch.rand(3, 48, 80)
    heatmaps, tags, _, _ = bottomup.bottomup_maps(_Constants(a, b, t), pixels, 64, flip=True, flip_index=flip_index)
    assert heatmaps.shape == (K, 64, 128) and tags.shape == (K, 64, 128, 2)
    plain, mirrored = (a + b) / 2, (a[flip_index] + b[flip_index]) / 2
    torch.testing.assert_close(heatmaps, ((plain + mirrored) / 2).view(K, 1, 1).expand(K, 64, 128))
    torch.testing.assert_close(tags[..., 0], t.view(K, 1, 1).expand(K, 64, 128))
    torch.testing.assert_close(tags[..., 1], t[flip_index].view(K, 1, 1).expand(K, 64, 128))
    heatmaps, tags, _, _ = bottomup.bottomup_maps(_Constants(a, b, t), pixels, 64, flip=False)
    torch.testing.assert_close(heatmaps, plain.view(K, 1, 1).expand(K, 64, 128))
    assert tags.shape == (K, 64, 128, 1)


@pytest.mark.parametrize(('scales', 'flip'), [((1.0,), False), ((1.0,), True), ((1.0, 0.5), True)])
def test_people_come_back_in_image_pixels(scales, flip):
    blobs = [(40.0, 50.0, 0.1), (150.0, 70.0, 0.4)]  # x, y, tag / 10 in a 200 x 120 image
    model = _BlobReader(input_size=128)
    poses = bottomup.estimate_pose_bottomup(model, _blob_image(120, 200, blobs), scales=scales, flip=flip)
    # the short side (120) to 128 and the long one to 200 * 128 / 120 = 213.3 -> 256 (at scale 0.5: 64 x 128), the
    # image and its mirror image in one batch with flip
    batch = 2 if flip else 1
    assert model.seen == [(batch, 3, 128, 256), (batch, 3, 64, 128)][: len(scales)]
    assert len(poses) == 2 and poses.keypoints.shape == (2, K, 3) and poses.joints == KEYPOINTS['coco']
    order = poses.keypoints[:, 0, 0].argsort()
    for person, (x, y, _) in zip(poses.keypoints[order], blobs):
        assert (person[:, 2] > 0.1).all()
        # a heatmap pixel at scale 1 is 120 / 128 = 0.94 image pixels, 1.9 at scale 0.5; the decoded peak is good to a
        # quarter of one, the stand-in's pooling blurs it further (a wrong warp, projection or flip is pixels off)
        torch.testing.assert_close(person[:, 0], torch.full((K,), x), atol=1.5, rtol=0)
        torch.testing.assert_close(person[:, 1], torch.full((K,), y), atol=1.5, rtol=0)
    boxes = poses.boxes[order]
    torch.testing.assert_close(boxes[:, :2], poses.keypoints[order][:, :, :2].amin(1))
    torch.testing.assert_close(boxes[:, 2:], poses.keypoints[order][:, :, :2].amax(1) - boxes[:, :2])
    torch.testing.assert_close(poses.scores[order], poses.keypoints[order][:, :, 2].mean(1))


def test_bottomup_refuses_what_it_cannot_do():
    model = _BlobReader(input_size=64)
    image = _blob_image(64, 64, [(32.0, 32.0, 0.1)])
    with pytest.raises(ValueError, match='scale 1.0'):
        bottomup.estimate_pose_bottomup(model, image, scales=(0.5, 2.0))
    with pytest.raises(ValueError, match='34 channels; for 14 joints'):
        bottomup.estimate_pose_bottomup(model, image, joints=KEYPOINTS['crowdpose'])
    top_down = timm.create_model('hrnetv1_w18_small_v1', device='meta')
    with pytest.raises(ValueError, match='bottomup_heatmaps_tags'):
        bottomup.estimate_pose_bottomup(top_down, image)
