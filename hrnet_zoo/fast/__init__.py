"""The CPU inference fast path: :func:`optimize_for_inference` (:mod:`.optimize`), Winograd F(4x4, 3x3)
(:mod:`.winograd`), and the private torch ops both run on (:mod:`._onednn`)."""

from .optimize import FusedConv, fold_batchnorm, optimize_for_inference

__all__ = ['FusedConv', 'fold_batchnorm', 'optimize_for_inference']
