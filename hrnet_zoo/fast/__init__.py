"""The CPU inference fast path: :func:`optimize_for_inference` (:mod:`.optimize`), built from fused oneDNN
convolutions (:mod:`.conv`), Winograd F(4x4, 3x3) (:mod:`.winograd`) and the private torch ops both run on
(:mod:`._onednn`); with ``backend='onednn_graph'``, the folded model traced and run by torch's oneDNN Graph
fusion (:mod:`.onednn_graph`); or, with ``backend='openvino'``, our checked export run by OpenVINO
(:mod:`.openvino_backend`)."""

from .optimize import BACKENDS, FusedConv, fold_batchnorm, optimize_for_inference

__all__ = ['BACKENDS', 'FusedConv', 'fold_batchnorm', 'optimize_for_inference']
