"""Benchmarks: the harness (:mod:`.harness`, ``hrnet-zoo bench``), the peer engines (:mod:`.peers`: timm, ONNX
Runtime, OpenVINO), per-op profiles (:mod:`.profile`), reports and tables (:mod:`.report`) and the task timings
(:mod:`.tasks`). Never imported by the library: ``import hrnet_zoo`` loads none of it."""

from .harness import *  # noqa: F403  (``hrnet_zoo.bench.<name>`` as before the harness moved into this package)
from .harness import __all__  # noqa: F401
