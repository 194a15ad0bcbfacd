"""The S3-compatible backend (extra ``treadle[s3]``, boto3).

``s3://bucket/prefix``: objects at ``<prefix>/sha256/ab/<sha256>``. Endpoint, region and
credentials come from boto3's own settings (``AWS_ENDPOINT_URL``, the credentials chain),
or from a client passed in. Large files go up in parts (boto3's managed transfer, above
``multipart_threshold``); downloads are ranged GETs streamed in chunks; the API hands
clients a short-lived presigned URL instead of proxying the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from treadle.artifacts.blobstore import CHUNK, ArtifactStore, Blob, BlobMissing, object_key
from treadle.core.errors import ConfigurationError, MissingExtra

MULTIPART_THRESHOLD = 16 << 20
MULTIPART_CHUNK = 8 << 20  # S3's minimum part is 5 MiB


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3ArtifactStore(ArtifactStore):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunksize: int = MULTIPART_CHUNK,
    ) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.exceptions import ClientError
        except ImportError as exc:
            raise MissingExtra("s3", "boto3") from exc
        if not bucket:
            raise ConfigurationError("an S3 artifacts URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client_error: type[Exception] = ClientError
        self.client: Any = client if client is not None else boto3.client(
            "s3", endpoint_url=endpoint_url)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize,
            max_concurrency=4)

    def __repr__(self) -> str:
        return f"<S3ArtifactStore {self.url!r}>"

    def key(self, sha256: str) -> str:
        key = object_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except self._client_error as exc:
            if _missing(exc):
                return None
            raise
        return head

    def ensure(self, path: Path, blob: Blob) -> bool:
        head = self._head(blob.sha256)
        if head is not None and int(head["ContentLength"]) == blob.size:
            return False
        self.client.upload_file(str(path), self.bucket, self.key(blob.sha256),
                                Config=self._transfer)
        return True

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobMissing(sha256)
        return int(head["ContentLength"])

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self.size(sha256)  # still refuse a missing object
            return iter(())
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(**params)["Body"]
        except self._client_error as exc:
            if _missing(exc):
                raise BlobMissing(sha256) from None
            if "InvalidRange" in str(exc):  # start at or past the end: nothing to send
                return iter(())
            raise
        return _stream(body)

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, expires: int = 300
    ) -> str:
        # RFC 6266 filename*: the name is the user's, so percent-encode it entirely.
        disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(sha256),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition},
            ExpiresIn=expires,
        )
        return url

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
