"""The S3 requests of the event log, each a blocking boto3 call run in a worker thread.

Failures are told apart the way the log needs them: a name already taken by a conditional write
(`Taken`), an object gone since it was listed (`Gone`), and anything else as `Unavailable`, naming
the object and never a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from vteam.errors import Unavailable
from vteam.events import segments
from vteam.events.segments import Row

DELETE_BATCH = 1000
CONTENT_TYPE = "application/x-ndjson"


class Taken(Exception):
    """A conditional write found an object already under that name."""


class Gone(Exception):
    """An object listed a moment ago has gone (compaction or retention moved or removed it)."""


class Bucket:
    """One bucket through one boto3 client; `where` names the endpoint for messages."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name
        self.where = _host(client)

    async def check(self) -> None:
        await self._call("head_bucket", "")

    async def metadata(self, key: str) -> dict[str, str]:
        answer = await self._call("head_object", key, Key=key)
        return cast(dict[str, str], answer.get("Metadata") or {})

    async def objects(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = await self._call("list_objects_v2", prefix, **params)
            items.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return items
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def rows(self, key: str) -> list[Row]:
        """GET and decode in the same worker thread: a merged segment of megabytes never stalls the loop."""

        def get() -> list[Row]:
            return segments.decode(self._client.get_object(Bucket=self.name, Key=key)["Body"].read())

        try:
            return cast(list[Row], await self._guard("get_object", key, get))
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"s3://{self.name}/{key} is not an event segment") from None

    async def put(self, key: str, rows: list[Row]) -> None:
        """Store rows under a name no object has yet; encoded in the PUT's own worker thread, off the loop."""

        def put() -> None:
            self._client.put_object(
                Bucket=self.name,
                Key=key,
                Body=segments.encode(rows),
                IfNoneMatch="*",
                Metadata=segments.metadata(rows),
                ContentType=CONTENT_TYPE,
            )

        await self._guard("put_object", key, put)

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = await self._call(
                "delete_objects", batch[0], Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            if errors := answer.get("Errors"):
                code = errors[0].get("Code", "unknown")
                raise Unavailable(f"S3 refused to delete {len(errors)} event objects, {errors[0].get('Key')}: {code}")

    async def _call(self, operation: str, key: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, operation)
        return cast(dict[str, Any], await self._guard(operation, key, lambda: method(Bucket=self.name, **params)))

    async def _guard(self, operation: str, key: str, call: Callable[[], Any]) -> Any:
        """Run a blocking boto3 call off the event loop; failures name the object, never a credential."""
        try:
            return await asyncio.to_thread(call)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise Taken(key) from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise Gone(key) from None
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            raise Unavailable(f"S3 refused {operation} on s3://{self.name}/{key}: {code} (HTTP {status})") from None
        except BotoCoreError as exc:
            raise Unavailable(
                f"S3 at {self.where} failed {operation} on s3://{self.name}/{key}: {type(exc).__name__}"
            ) from None


def _host(client: Any) -> str:
    """Where the client sends requests, without any user or password a URL might carry."""
    parts = urlsplit(str(getattr(getattr(client, "meta", None), "endpoint_url", "") or ""))
    if parts.hostname is None:
        return "the configured endpoint"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
