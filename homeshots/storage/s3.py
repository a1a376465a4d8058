"""An S3 bucket and prefix as the store (MinIO too); boto3's standard retries ride out 5xx and throttling."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from homeshots.core.errors import StoreError
from homeshots.core.settings import Settings
from homeshots.storage.base import Store
from homeshots.storage.keys import content_type_for


class S3Store(Store):
    """A bucket and prefix. boto3's standard retry mode rides out 5xx and throttling."""

    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config = Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.download_timeout,
            max_pool_connections=max(10, settings.download_concurrency),
        )
        self.client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region, config=config
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, *, overwrite: bool = False) -> bool:
        extra = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type_for(key), **extra
            )
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {code or status}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def put_file(self, key: str, path: str) -> None:
        try:
            self.client.upload_file(path, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type_for(key)})
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StoreError(f"cannot write s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot delete s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
