"""Images the user uploaded, read for the model: only under the user's own prefix, checked by content.

The key rule (`user-uploads/{userId}/...`) is enforced when the request is validated; this reads
each key again only through that rule, checks the size before downloading it whole, and trusts
the bytes' signature, never the file name, for the format.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from shared.aws_clients import S3, make_client
from shared.errors import Forbidden, InvalidRequest
from shared.images import image_format, is_key_under_user_prefix
from shared.models import Image
from shared.store.ports import ImageSource

MAX_IMAGE_BYTES = 3_750_000  # Bedrock's limit for one image


class S3ImageSource(ImageSource):
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @cached_property
    def _client(self) -> Any:
        return make_client("s3", S3.botocore_config())

    def load(self, user_id: str, keys: tuple[str, ...]) -> tuple[Image, ...]:
        return tuple(self._one(user_id, key) for key in keys)

    def _one(self, user_id: str, key: str) -> Image:
        if not is_key_under_user_prefix(key, user_id):
            raise Forbidden("image key outside your uploads")
        try:
            obj = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # Without `s3:ListBucket` (the role has none) S3 answers a missing key with 403 AccessDenied,
            # not 404 NoSuchKey, so as not to disclose what exists: both mean "no such image" here.
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "AccessDenied"):
                raise
            raise InvalidRequest(f"image not found: {key}") from exc
        if int(obj.get("ContentLength", 0)) > MAX_IMAGE_BYTES:
            obj["Body"].close()
            raise InvalidRequest(f"image too large: {key}")
        data = obj["Body"].read(MAX_IMAGE_BYTES + 1)
        kind = image_format(data)
        if kind is None or len(data) > MAX_IMAGE_BYTES:
            raise InvalidRequest(f"not a supported image (png, jpeg, gif, webp): {key}")
        return Image(data=data, format=kind)  # type: ignore[arg-type] - one of the four names above
