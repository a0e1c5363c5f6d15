"""The Hub side: publishing converted weights (:mod:`.client`), releasing the whole manifest from a folder of
official files (:mod:`.release`, above the client and the converter), and a Hub-protocol server for loopback use
(:mod:`.server` over :mod:`.store`, standard library only)."""

from .client import PUBLISHED_FILES, PublishResult, check_folder, publish, verify_published

__all__ = ['PUBLISHED_FILES', 'PublishResult', 'check_folder', 'publish', 'verify_published']
