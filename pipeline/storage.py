"""Content-addressed blobs (sha256) on local disk or S3, plus small named records.

Blobs are immutable: a blob's key is the sha256 of its bytes, so writing the same bytes twice changes
nothing and a published blob never changes. Records (`records/<name>`) are the one mutable
corner: durable notes such as a paid generation job's handle, written atomically.

Local writes go to a temp file and are renamed into place; S3 puts carry a SHA-256 checksum that
the server verifies, so a blob is either absent or complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import settings


class StorageError(RuntimeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_key(sha: str) -> str:
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise StorageError(f"not a sha256 hex digest: {sha!r}")
    return f"blobs/{sha[:2]}/{sha}"


def _check_record_name(name: str) -> str:
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid record name {name!r}")
    return f"records/{name}"


class BlobStore:
    """Interface shared by the local and S3 stores."""

    uri: str

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        raise NotImplementedError

    def get(self, sha: str) -> bytes:
        raise NotImplementedError

    def exists(self, sha: str) -> bool:
        raise NotImplementedError

    def location(self, sha: str) -> str:
        """Where a person (or a link in the UI) finds the blob."""
        raise NotImplementedError

    def put_record(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        raise NotImplementedError

    def get_record(self, name: str) -> bytes | None:
        raise NotImplementedError

    def presigned_url(self, sha: str, expires_s: int = 3600) -> str:
        raise StorageError(
            f"the blob store {self.uri} is local, so it cannot hand out URLs to a remote service; "
            "set KILN_STORE_URI=s3://bucket/prefix (with AWS credentials, and AWS_ENDPOINT_URL_S3 "
            "for a non-AWS server) so providers that take image URLs can fetch the concept art"
        )


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        sha = sha256_bytes(data)
        path = self._path(_blob_key(sha))
        if not path.exists():
            self._write_atomic(path, data)
        return sha

    def get(self, sha: str) -> bytes:
        path = self._path(_blob_key(sha))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"blob {sha} is missing from {self.uri}") from None
        if sha256_bytes(data) != sha:
            raise StorageError(f"blob {sha} in {self.uri} is corrupt (hash mismatch)")
        return data

    def exists(self, sha: str) -> bool:
        return self._path(_blob_key(sha)).exists()

    def location(self, sha: str) -> str:
        return str(self._path(_blob_key(sha)))

    def put_record(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        self._write_atomic(self._path(_check_record_name(name)), data)

    def get_record(self, name: str) -> bytes | None:
        try:
            return self._path(_check_record_name(name)).read_bytes()
        except FileNotFoundError:
            return None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError(f"S3 URI {uri!r} has no bucket")
    return bucket, prefix.strip("/")


# What selects an S3 client's server and credentials; a cached client is reused only while they stay
# the same, in the same process (a client must not cross a fork: its connection pool would be shared).
_S3_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
           "AWS_SHARED_CREDENTIALS_FILE")
_s3_clients: dict[tuple, Any] = {}
_s3_lock = threading.Lock()


def s3_client():
    """A boto3 S3 client from the standard credential chain; AWS_ENDPOINT_URL_S3 selects the server.

    One client per process and environment: creating one costs ~0.1 s of CPU (botocore loads and
    parses its service model), several times per run, and boto3 clients are thread-safe."""
    key = (os.getpid(), *(os.environ.get(name) for name in _S3_ENV))
    with _s3_lock:
        client = _s3_clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            client = _s3_clients[key] = boto3.client(
                "s3",
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
            )
        return client


class RecentBytes:
    """Byte strings this process wrote or read lately, by key, at most `limit` bytes (least recently
    used out first; one over a quarter of the limit is not kept). For what never changes under its
    key: blobs by (store, sha256) here, which spares the GET when a later step of the same run reads
    what an earlier one wrote (lod_chain reads the model generated_model put, engine_export and the
    checks the levels lod_chain put) and the HEAD when the same bytes are put again; a run's
    manifests by (store, run, record) in `resources.ManifestIOManager`."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self._items: dict[tuple, bytes] = {}  # insertion order = recency
        self._lock = threading.Lock()
        # a forked child (Celery's prefork pool) must not inherit the lock held by another thread
        os.register_at_fork(after_in_child=lambda: setattr(self, "_lock", threading.Lock()))

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.pop(key, None)
            if data is not None:
                self._items[key] = data
            return data

    def add(self, key: tuple, data: bytes) -> None:
        if len(data) > self.limit // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.size += len(data) - (len(old) if old is not None else 0)
            self._items[key] = data
            while self.size > self.limit:
                self.size -= len(self._items.pop(next(iter(self._items))))


RECENT_BLOB_BYTES = 64 * 1024 * 1024
# Below this size a new blob is PUT without a HEAD first: a HEAD costs about what a small PUT does,
# and a blob already stored is the same bytes under the same key. Above it, the HEAD can spare the
# upload (a re-generated model that did not change).
HEAD_FIRST_BYTES = 1024 * 1024


class S3BlobStore(BlobStore):
    """Blobs as objects under `blobs/`, records under `records/`. Blob requests go through a
    per-process cache of recent blobs (`RecentBytes`); records are mutable and always read from S3."""

    recent = RecentBytes(RECENT_BLOB_BYTES)

    def __init__(self, uri: str, client=None):
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_s3_uri(self.uri)
        self.client = client or s3_client()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        sha = sha256_bytes(data)
        if self.recent.get((self.uri, sha)) is None:
            if len(data) < HEAD_FIRST_BYTES or not self.exists(sha):
                self._put(self._key(_blob_key(sha)), data, content_type)
            self.recent.add((self.uri, sha), data)
        return sha

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        import base64

        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )

    def get(self, sha: str) -> bytes:
        from botocore.exceptions import ClientError

        data = self.recent.get((self.uri, sha))
        if data is not None:
            return data
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=self._key(_blob_key(sha)))["Body"].read()
        except ClientError as exc:
            raise StorageError(f"blob {sha} is missing from {self.uri}: {exc}") from None
        if sha256_bytes(data) != sha:
            raise StorageError(f"blob {sha} in {self.uri} is corrupt (hash mismatch)")
        self.recent.add((self.uri, sha), data)
        return data

    def exists(self, sha: str) -> bool:
        from botocore.exceptions import ClientError

        if self.recent.get((self.uri, sha)) is not None:
            return True
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(_blob_key(sha)))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def location(self, sha: str) -> str:
        return f"s3://{self.bucket}/{self._key(_blob_key(sha))}"

    def put_record(self, name: str, data: bytes, content_type: str = "application/json") -> None:
        self._put(self._key(_check_record_name(name)), data, content_type)

    def get_record(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(_check_record_name(name)))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def presigned_url(self, sha: str, expires_s: int = 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(_blob_key(sha))}, ExpiresIn=expires_s
        )


def open_store(uri: str | None = None) -> BlobStore:
    uri = uri or settings.store_uri()
    if uri.startswith("s3://"):
        return S3BlobStore(uri)
    return LocalBlobStore(uri)
