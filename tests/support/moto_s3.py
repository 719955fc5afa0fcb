"""A real S3 API for tests: moto's server on loopback, real boto3 clients, a fresh bucket per test."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

KEY_ID = "test-key-id"
SECRET = "test-secret-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """One moto server; moto keeps its buckets in the process, so a restart on the same port finds them."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> MotoS3:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def s3_client(endpoint: str, *, key_id: str = KEY_ID, secret: str = SECRET) -> Any:
    """A client that fails at once rather than retry, so outage tests stay fast."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            retries={"mode": "standard", "max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
            s3={"addressing_style": "path"},
        ),
    )


def create_bucket(endpoint: str) -> str:
    name = f"events-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def empty_bucket(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)


def keys(endpoint: str, bucket: str) -> list[str]:
    client = s3_client(endpoint)
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(item["Key"] for item in page.get("Contents", []))
    return found


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = MotoS3().start()
    yield server.endpoint
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[str]:
    bucket = create_bucket(moto_endpoint)
    yield bucket
    empty_bucket(moto_endpoint, bucket)
