"""Uploaded images from a dict, through the same key rule and content check as the S3 source."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import Forbidden, InvalidRequest
from shared.images import image_format, is_key_under_user_prefix
from shared.models import Image
from shared.store.ports import ImageSource


class InMemoryImageSource(ImageSource):
    """`objects` maps keys to images, or to raw bytes judged by their signature as S3's are."""

    def __init__(self, objects: Mapping[str, Image | bytes] | None = None) -> None:
        self.objects = dict(objects or {})
        self.loaded: list[str] = []

    def load(self, user_id: str, keys: tuple[str, ...]) -> tuple[Image, ...]:
        return tuple(self._one(user_id, key) for key in keys)

    def _one(self, user_id: str, key: str) -> Image:
        if not is_key_under_user_prefix(key, user_id):
            raise Forbidden("image key outside your uploads")
        found = self.objects.get(key)
        if found is None:
            raise InvalidRequest(f"image not found: {key}")
        self.loaded.append(key)
        if isinstance(found, Image):
            return found
        kind = image_format(found)
        if kind is None:
            raise InvalidRequest(f"not a supported image (png, jpeg, gif, webp): {key}")
        return Image(data=found, format=kind)  # type: ignore[arg-type] - one of the four names
