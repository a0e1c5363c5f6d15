"""A Hub-protocol server for loopback use (:mod:`.server` over :mod:`.store`, standard library only): the tests, the
demo and air-gapped users run ``huggingface_hub``'s unmodified client against it. Publishing is
:mod:`hrnet_zoo.publish`."""

from typing import Any

from .._moved import moved_attribute

__all__: list[str] = []

# the publish client lived here before it moved to hrnet_zoo.publish.client
_MOVED = {name: 'hrnet_zoo.publish.client' for name in ('PUBLISHED_FILES', 'PublishResult', 'check_folder', 'publish',
                                                         'verify_published')}  # fmt: skip


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)
