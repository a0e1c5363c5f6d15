"""Person boxes for top-down pose: a COCO detector from torchvision, its weights fetched and hash-checked.

HRNet's top-down pose models need a box per person; the official demo finds them with torchvision's Faster R-CNN.
:class:`PersonDetector` builds any torchvision detection model by name (``torchvision.models.get_model``) and loads
its COCO weights with the same fetch as HRNet's own direct downloads (:func:`~hrnet_zoo.weights.sources.fetch`:
torch.hub's cache, the sha256 prefix in torchvision's file name, ``HRNET_ZOO_MIRROR``, offline mode), read with
``torch.load(weights_only=True)``. Calling it on an image gives the person boxes as ``x, y, w, h``, the format
:func:`~.pose.estimate_pose` takes.

The default, :data:`DEFAULT_DETECTOR`, is Faster R-CNN with a MobileNetV3-Large FPN backbone: 32.8 box AP on COCO
val2017 for 4.5 GFLOPs (torchvision's numbers), so on a CPU the detector costs less than the pose model. For the
demo's accuracy, ``PersonDetector('fasterrcnn_resnet50_fpn_v2')`` has 46.7 AP for 280 GFLOPs.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..weights.sources import MIRROR_ENV, DirectDownloadError, fetch, is_offline

__all__ = ['DEFAULT_DETECTOR', 'DEFAULT_MAX_PEOPLE', 'DEFAULT_SCORE_THRESHOLD', 'PersonDetector', 'default_detector']

DEFAULT_DETECTOR = 'fasterrcnn_mobilenet_v3_large_fpn'
DEFAULT_SCORE_THRESHOLD = 0.5  # a person box at least this sure; the COCO val protocol uses given boxes instead
DEFAULT_MAX_PEOPLE = 20


def _detection_models() -> list[str]:
    import torchvision.models.detection as detection
    from torchvision.models import list_models

    return list_models(module=detection)


def _fetch_weights(name: str, url: str, hash_prefix: str | None) -> Path:
    try:
        return fetch(url, hash_prefix=hash_prefix)
    except DirectDownloadError as error:  # the same failure, with what to do for a detector rather than a tag
        offline = is_offline()
        other = f'unset {offline} to download it' if offline else f'set {MIRROR_ENV} to a mirror of it'
        hint = f"put torchvision's file there by hand, or {other}"
        message = f'the {name} weights: could not fetch {error.url} into {error.path}: {error.reason}; {hint}'
        raise DirectDownloadError(message, error.url, error.path, error.reason) from None


class PersonDetector:
    """People in an image, by a torchvision COCO detector: ``detector(image) -> (boxes [M, 4], scores [M])``.

    Args:
        name: a torchvision detection model (``torchvision.models.list_models(module=torchvision.models.detection)``).
        score_threshold: boxes scored below it are dropped.
        max_people: at most this many boxes, the best first.
        hash_prefix: the sha256 prefix the weights file must have; None takes it from torchvision's file name.
        min_size, max_size: the detector's resize (its own defaults where None); smaller is faster and misses
            small people.
        pretrained: False leaves the detector's weights random (tests, timing), downloading nothing.

    The image is ``[3, H, W]`` RGB in 0..1, any size (the detector resizes it itself). Boxes come back as
    ``x, y, w, h`` in image pixels (float64) with their scores, the surest first, on the CPU.
    """

    def __init__(
        self,
        name: str = DEFAULT_DETECTOR,
        *,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        max_people: int = DEFAULT_MAX_PEOPLE,
        hash_prefix: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        pretrained: bool = True,
    ) -> None:
        from torchvision.models import get_model, get_model_weights

        choices = _detection_models()
        if name not in choices:
            raise ValueError(f'unknown detector {name!r}: expected a torchvision detection model, one of '
                             f'{", ".join(choices)}')  # fmt: skip
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f'score_threshold must be in 0..1, got {score_threshold}')
        if max_people < 1:
            raise ValueError(f'max_people must be at least 1, got {max_people}')
        weights = get_model_weights(name).DEFAULT
        categories = weights.meta['categories']
        if 'person' not in categories:  # every COCO detector has it; a guard against a future non-COCO default
            raise ValueError(f'{name} does not detect people: its categories are {", ".join(categories[:5])}, ...')
        options = {k: v for k, v in dict(min_size=min_size, max_size=max_size).items() if v is not None}
        # weights_backbone=None: the ImageNet backbone would be a second download, and the COCO file holds it all
        model = get_model(name, weights=None, weights_backbone=None, num_classes=len(categories), **options)
        if pretrained:
            path = _fetch_weights(name, weights.url, hash_prefix)
            try:
                model.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
            except (RuntimeError, pickle.UnpicklingError) as error:
                raise ValueError(f'{path} does not hold the weights of {name} ({str(error).splitlines()[0]}); '
                                 'delete it to download it again') from None  # fmt: skip
        self.name, self.url = name, weights.url
        self.score_threshold, self.max_people = float(score_threshold), int(max_people)
        self.person_label = categories.index('person')
        self.model = model.eval()

    def to(self, device: torch.device | str) -> PersonDetector:
        """Run the detector on ``device`` (images are moved there; boxes come back on the CPU)."""
        self.model.to(device)
        return self

    def __repr__(self) -> str:
        return (f'PersonDetector({self.name!r}, score_threshold={self.score_threshold}, '
                f'max_people={self.max_people})')  # fmt: skip

    @torch.no_grad()
    def __call__(self, image: Tensor) -> tuple[Tensor, Tensor]:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f'PersonDetector takes one RGB image [3, H, W] in 0..1, got shape {tuple(image.shape)}')
        device = next(self.model.parameters()).device
        found = self.model([image.to(device, torch.float32)])[0]
        keep = (found['labels'] == self.person_label) & (found['scores'] >= self.score_threshold)
        scores, boxes = found['scores'][keep].cpu(), found['boxes'][keep].cpu().double()
        order = scores.argsort(descending=True, stable=True)[: self.max_people]
        scores, boxes = scores[order].float(), boxes[order]
        return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1), scores


@lru_cache(maxsize=1)
def default_detector() -> PersonDetector:
    """The :data:`DEFAULT_DETECTOR` with its default options, built once per process (on first use)."""
    return PersonDetector()
