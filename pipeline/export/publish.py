"""Versioned, never-overwritten publishing of export packages to a local folder or S3.

Layout under the export target (`KILN_EXPORT_URI`):

    <asset_id>/<version>/<profile>/...            each profile's files (GLBs, preview.png, manifest.json)
    <asset_id>/<version>/lods/<asset_id>_LOD<n>.glb   each level alone (catalog.json's lods[].uri)
    <asset_id>/<version>/publication.json         written after every file: the version is complete
    <asset_id>/latest.json                        written last: readers never see half a publication

Objects under a version are immutable: an existing object is verified (same sha256) and left
alone, never rewritten. So publishing a complete version again changes nothing, and a publish that
failed half-way is finished by the next attempt without touching what is already there. Only
latest.json (and the catalog beside it) is ever replaced.

Local writes go to a temp file that is hard-linked into place (atomic, and refuses to replace an
existing file); S3 puts carry a SHA-256 checksum the server verifies, `If-None-Match: *`, the
Content-Type, and the hex digest in `x-amz-meta-sha256`; files above the multipart threshold go
through boto3's managed transfer with per-part SHA-256 checksums.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.storage import parse_s3_uri, s3_client

from ..concepts import ASSET_ID_RE
from ..storage import sha256_bytes
from .profiles import ExportFile, content_type_for

PUBLICATION_SCHEMA = 1
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
MULTIPART_THRESHOLD = 16 * 1024 * 1024  # boto3 needs parts of at least 5 MiB; below this one PUT is simpler


class PublishError(RuntimeError):
    """Publishing failed; nothing new was marked published (latest.json is untouched)."""


# ----------------------------------------------------------------------------------------------
# Targets


class ExportTarget:
    """Where export packages go. Keys are '/'-separated paths relative to the target's root."""

    uri: str

    def uri_for(self, key: str) -> str:
        raise NotImplementedError

    def read(self, key: str) -> bytes | None:
        raise NotImplementedError

    def existing_sha256(self, key: str) -> str | None:
        """The sha256 of the object at `key`, or None when there is none."""
        data = self.read(key)
        return None if data is None else sha256_bytes(data)

    def exists(self, key: str) -> bool:
        return self.existing_sha256(key) is not None  # S3: one HEAD request

    def _create(self, key: str, data: bytes, content_type: str, sha: str) -> bool:
        """Write `data` unless `key` exists; False when it already existed."""
        raise NotImplementedError

    def write(self, key: str, data: bytes, content_type: str) -> None:
        """Create or replace (latest.json, the catalog): atomic, never a partial object."""
        raise NotImplementedError

    def asset_ids(self) -> list[str]:
        """Asset folders at the root (those that may hold a latest.json)."""
        raise NotImplementedError

    def keys_under(self, prefix: str) -> set[str] | None:
        """The keys under `prefix` (one listing), or None where asking per key is as cheap."""
        return None

    def write_immutable(self, key: str, data: bytes, content_type: str, *, absent: bool = False) -> bool:
        """Create `key` with `data`; if it exists, verify it holds the same bytes and leave it.
        True when written now, False when it was already there. `absent`: a listing just showed
        no `key`, so the create goes first (still exclusive: one who wrote it meanwhile is found)."""
        sha = sha256_bytes(data)
        existing = None if absent else self.existing_sha256(key)
        if existing is None and self._create(key, data, content_type, sha):
            return True
        existing = existing or self.existing_sha256(key)  # lost a race: someone created it meanwhile
        if existing != sha:
            raise PublishError(
                f"{self.uri_for(key)} already exists with different bytes (sha256 {existing}, publishing {sha}); "
                "a published version is never overwritten. The version name must come from the content "
                "(profiles.version_for), so this means the build is not deterministic or the object was edited")
        return False


class LocalTarget(ExportTarget):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def uri_for(self, key: str) -> str:
        return str(self._path(key))

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _temp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _create(self, key: str, data: bytes, content_type: str, sha: str) -> bool:
        path = self._path(key)
        tmp = self._temp(path, data)
        try:
            os.link(tmp, path)  # atomic and exclusive: fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        tmp = self._temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def asset_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and ASSET_ID_RE.match(p.name))


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


class S3Target(ExportTarget):
    """s3://bucket/prefix through boto3's standard credential chain (AWS_ENDPOINT_URL_S3 for
    MinIO, SeaweedFS, R2). Each request is retried by botocore (standard mode); each object is
    retried `attempts` times more as a whole (a multipart upload restarts cleanly)."""

    def __init__(self, uri: str, client=None, *, multipart_threshold: int = MULTIPART_THRESHOLD,
                 attempts: int = 3, backoff_s: float = 0.5):
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_s3_uri(self.uri)
        self.client = client or s3_client()
        self.multipart_threshold = multipart_threshold
        self.attempts = attempts
        self.backoff_s = backoff_s

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _retry(self, what: str, fn):
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status in (400, 403, 404, 412) or attempt == self.attempts:
                    raise PublishError(f"{what} failed: {exc}") from exc
            except (BotoCoreError, OSError) as exc:
                if attempt == self.attempts:
                    raise PublishError(f"{what} failed after {attempt} attempts: {exc}") from exc
            time.sleep(self.backoff_s * attempt)

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        def get():
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise

        return self._retry(f"reading {self.uri_for(key)}", get)

    def existing_sha256(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        def head():
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise

        found = self._retry(f"checking {self.uri_for(key)}", head)
        if found is None:
            return None
        return found.get("Metadata", {}).get("sha256") or super().existing_sha256(key)

    def _put(self, key: str, data: bytes, content_type: str, sha: str, exclusive: bool) -> None:
        from boto3.s3.transfer import TransferConfig

        args: dict[str, Any] = {"ContentType": content_type, "Metadata": {"sha256": sha}}
        if len(data) < self.multipart_threshold:
            if exclusive:
                args["IfNoneMatch"] = "*"
            digest = base64.b64encode(bytes.fromhex(sha)).decode()
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumSHA256=digest, **args)
        else:
            config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                    multipart_chunksize=max(self.multipart_threshold // 2, 5 * 1024 * 1024))
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key),
                                       ExtraArgs={**args, "ChecksumAlgorithm": "SHA256"}, Config=config)

    def _create(self, key: str, data: bytes, content_type: str, sha: str) -> bool:
        from botocore.exceptions import ClientError

        def put():
            try:
                self._put(key, data, content_type, sha, exclusive=True)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                    return False
                raise

        return self._retry(f"uploading {self.uri_for(key)}", put)

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self._retry(f"uploading {self.uri_for(key)}",
                    lambda: self._put(key, data, content_type, sha256_bytes(data), exclusive=False))

    def keys_under(self, prefix: str) -> set[str]:
        full = self._key(prefix)
        cut = len(self._key(""))
        keys: set[str] = set()
        pages = self._retry(f"listing {self.uri_for(prefix)}", lambda: list(
            self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)))
        for page in pages:
            keys.update(item["Key"][cut:] for item in page.get("Contents", []))
        return keys

    def asset_ids(self) -> list[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        ids = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix):].rstrip("/")
                if ASSET_ID_RE.match(name):
                    ids.append(name)
        return sorted(ids)


def open_target(uri: str | None = None) -> ExportTarget:
    """The export target: `uri`, else KILN_EXPORT_URI, else $KILN_DATA_DIR/exports."""
    uri = uri or settings.export_uri()
    if uri.startswith("s3://"):
        return S3Target(uri)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return LocalTarget(uri)


# ----------------------------------------------------------------------------------------------
# Publishing


@dataclass
class PublishResult:
    asset_id: str
    version: str
    already_published: bool  # the version was complete before this call (nothing was written to it)
    latest_uri: str
    latest_updated: bool  # latest.json now points at this version and did not before
    # every object of the version, JSON-ready: {"profile" ("lods" for the per-level GLBs), "name",
    # "path" (relative to the target root), "uri", "sha256", "bytes", "content_type"}
    files: list[dict[str, Any]] = field(default_factory=list)
    uris: dict[str, dict[str, str]] = field(default_factory=dict)  # profile -> file name -> uri
    record: dict[str, Any] = field(default_factory=dict)  # the publication record (paths, no URIs)
    written: int = 0  # objects written by this call
    # When already published: paths whose bytes in this build differ from the published ones
    # (empty when the build is deterministic and the version name covers its content).
    mismatched: list[str] = field(default_factory=list)


def _version_key(asset_id: str, version: str) -> str:
    return f"{asset_id}/{version}"


def latest_key(asset_id: str) -> str:
    return f"{asset_id}/latest.json"


def level_key(asset_id: str, version: str, level: int) -> str:
    return f"{_version_key(asset_id, version)}/lods/{asset_id}_LOD{level}.glb"


@dataclass
class _Object:
    group: str  # the profile, or "lods"
    name: str
    key: str
    data: bytes
    content_type: str


_STRUCTURE = ("kiln_publication", "asset_id", "version", "preview", "lods", "exports", "publication", "published_at")


def _summary_manifest(files_by_profile: dict[str, list[ExportFile]]) -> dict[str, Any]:
    for profile in ("web", *sorted(files_by_profile)):
        for f in files_by_profile.get(profile, []):
            if f.name == "manifest.json":
                return json.loads(f.data)
    return {}


def _record(asset_id: str, version: str, files_by_profile: dict[str, list[ExportFile]],
            level_glbs: dict[int, bytes], extra: dict[str, Any]) -> tuple[dict[str, Any], list[_Object]]:
    """The publication record and the objects to write. The record is itself an immutable object,
    so it holds only paths relative to the target root (the target may move); `_with_uris` adds
    the URIs when it is copied into latest.json."""
    base = _version_key(asset_id, version)
    objects: list[_Object] = []

    def entry(group: str, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        key = f"{base}/{group}/{name}"
        objects.append(_Object(group, name, key, data, content_type))
        return {"path": key, "sha256": sha256_bytes(data), "bytes": len(data)}

    exports: dict[str, Any] = {}
    preview = None
    for profile in sorted(files_by_profile):
        files = files_by_profile[profile]
        listed = []
        for f in files:
            if not _NAME_RE.match(f.name) or ".." in f.name.split("/"):
                raise PublishError(f"profile {profile}: file name {f.name!r} is not a safe relative path")
            listed.append({"name": f.name, "content_type": f.content_type,
                           **entry(profile, f.name, f.data, f.content_type)})
        by_name = {item["name"]: item for item in listed}
        glbs = [item for item in listed if item["name"].endswith(".glb")]
        primary = glbs[0] if glbs else by_name.get("manifest.json")
        if primary is None:
            raise PublishError(f"profile {profile} has neither a GLB nor a manifest.json to publish")
        exports[profile] = {**{k: primary[k] for k in ("path", "sha256", "bytes")},
                            "manifest": by_name.get("manifest.json", {}).get("path"), "files": listed}
        if preview is None and "preview.png" in by_name:
            preview = {"path": by_name["preview.png"]["path"]}

    manifest = _summary_manifest(files_by_profile)
    lod_table = {row["level"]: row for row in manifest.get("lods", [])}
    lods = []
    for level in sorted(set(lod_table) | set(level_glbs)):
        row = lod_table.get(level, {})
        item = {"level": level, "triangles": row.get("triangles"), "vertices": row.get("vertices"),
                "error_m": row.get("error_m"), "screen_size": row.get("screen_size"),
                "path": None, "sha256": None, "bytes": None}
        if level in level_glbs:
            item.update(entry("lods", f"{asset_id}_LOD{level}.glb", level_glbs[level], "model/gltf-binary"))
        lods.append(item)

    # LOD fields the manifests lack (no manifest among the files) may come from `extra`.
    extra_lods = {row["level"]: row for row in extra.get("lods", []) if isinstance(row, dict) and "level" in row}
    for item in lods:
        for k, v in extra_lods.get(item["level"], {}).items():
            if item.get(k) is None:
                item[k] = v
    record = {
        "provider": manifest.get("provider", ""),
        "cost_usd": manifest.get("cost_usd"),
        "category": manifest.get("category", ""),
        "source_sha256": manifest.get("source_sha256", ""),
        "kiln_version": manifest.get("kiln_version", settings.KILN_VERSION),
        "validation": manifest.get("validation"),
        "bounds": manifest.get("bounds"),
        "provenance": manifest.get("provenance", {}),
        # Fields from `extra` win over the manifest's, but never over the published structure below.
        **{k: v for k, v in extra.items() if k not in _STRUCTURE},
        "kiln_publication": PUBLICATION_SCHEMA,
        "asset_id": asset_id,
        "version": version,
        "preview": preview,
        "lods": lods,
        "exports": exports,
    }
    return record, objects


def _with_uris(target: ExportTarget, value: Any) -> Any:
    """A copy of `value` with a "uri" beside every "path"."""
    if isinstance(value, list):
        return [_with_uris(target, v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _with_uris(target, v) for k, v in value.items()}
    if isinstance(value.get("path"), str):
        out["uri"] = target.uri_for(value["path"])
    elif "path" in value:
        out["uri"] = None
    return out


def _file_map(record: dict[str, Any]) -> dict[str, str]:
    """path -> sha256 of every object a publication record lists."""
    files = {f["path"]: f["sha256"] for info in record.get("exports", {}).values() for f in info.get("files", [])}
    files.update({lv["path"]: lv["sha256"] for lv in record.get("lods", []) if lv.get("path")})
    return files


def _dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"


def publish(target: ExportTarget, asset_id: str, version: str, files_by_profile: dict[str, list[ExportFile]],
            level_glbs: dict[int, bytes] | None = None, *, source_sha256: str | None = None,
            extra: dict[str, Any] | None = None) -> PublishResult:
    """Publish one asset version and then point `<asset_id>/latest.json` at it.

    Summary fields (provider, cost, category, LOD table, provenance, validation) come from the
    profiles' manifest.json; `source_sha256` and `extra` override or add to them in the
    publication record (and so in latest.json and the catalog entry), e.g.
    extra={"validation": {"status": "passed", "errors": 0}}; they cannot replace the published
    structure (lods' paths, exports). Raises PublishError, with latest.json untouched, when an
    object cannot be written after retries or exists with other bytes.
    """
    if not ASSET_ID_RE.match(asset_id):
        raise PublishError(f"asset_id {asset_id!r} does not match {ASSET_ID_RE.pattern}")
    if not VERSION_RE.match(version):
        raise PublishError(f"version {version!r} does not match {VERSION_RE.pattern}")
    if not files_by_profile:
        raise PublishError(f"asset {asset_id}: no profiles to publish")
    for profile, files in files_by_profile.items():
        if not _NAME_RE.match(profile) or "/" in profile or profile == "lods":
            raise PublishError(f"profile name {profile!r} cannot be a folder name")
        for f in files:
            if f.content_type != content_type_for(f.name) and f.name.rsplit(".", 1)[-1] in ("glb", "json", "png"):
                raise PublishError(f"{profile}/{f.name}: content type {f.content_type!r} does not match its suffix")

    extra = dict(extra or {})
    if source_sha256 is not None:
        extra["source_sha256"] = source_sha256
    record, objects = _record(asset_id, version, files_by_profile, level_glbs or {}, extra)
    marker = f"{_version_key(asset_id, version)}/publication.json"
    existing = target.read(marker)
    written = 0
    mismatched: list[str] = []
    if existing is not None:
        # Complete: nothing is written to it. What was published stands, even where this build's
        # bytes differ (then the version name does not cover everything that changes the bytes).
        previous = json.loads(existing)
        published, rebuilt = _file_map(previous), _file_map(record)
        mismatched = sorted(k for k in published.keys() | rebuilt.keys() if published.get(k) != rebuilt.get(k))
        already = True
        record = previous
    else:
        already = False
        # one listing of the version's folder instead of a lookup per object: on S3 a fresh
        # version's objects are created without a HEAD each (conditional PUTs keep them exclusive)
        present = target.keys_under(f"{_version_key(asset_id, version)}/")
        for obj in objects:
            written += target.write_immutable(obj.key, obj.data, obj.content_type,
                                              absent=present is not None and obj.key not in present)
        written += target.write_immutable(marker, _dumps(record), "application/json",
                                          absent=present is not None and marker not in present)

    return _point_latest(target, asset_id, version, record, already, written, mismatched)


def republish_existing(target: ExportTarget, asset_id: str, version: str) -> PublishResult | None:
    """If `version` is already complete, point latest.json at it (if needed) and return the result
    without building anything; None when it has not been published (completely) yet."""
    existing = target.read(f"{_version_key(asset_id, version)}/publication.json")
    if existing is None:
        return None
    return _point_latest(target, asset_id, version, json.loads(existing), True, 0, [])


def _point_latest(target: ExportTarget, asset_id: str, version: str, record: dict[str, Any], already: bool,
                  written: int, mismatched: list[str]) -> PublishResult:
    """Move latest.json to this complete version (last, so readers never see half a publication)."""
    marker = f"{_version_key(asset_id, version)}/publication.json"
    latest_path = latest_key(asset_id)
    current = read_latest(target, asset_id)
    updated = current is None or current.get("version") != version
    if updated:
        stamped = {**_with_uris(target, record), "publication": marker,
                   "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        target.write(latest_path, _dumps(stamped), "application/json")
        written += 1

    # The version's objects as published (the record), which is this build unless it was already there.
    files = [{"profile": profile, **{k: f[k] for k in ("name", "path", "sha256", "bytes", "content_type")}}
             for profile, info in record["exports"].items() for f in info["files"]]
    files += [{"profile": "lods", "name": lv["path"].rsplit("/", 1)[1], "path": lv["path"], "sha256": lv["sha256"],
               "bytes": lv["bytes"], "content_type": "model/gltf-binary"} for lv in record["lods"] if lv.get("path")]
    for f in files:
        f["uri"] = target.uri_for(f["path"])
    uris = {profile: {item["name"]: target.uri_for(item["path"]) for item in info["files"]}
            for profile, info in record["exports"].items()}
    return PublishResult(asset_id=asset_id, version=version, already_published=already,
                         latest_uri=target.uri_for(latest_path), latest_updated=updated, files=files,
                         uris=uris, record=record, written=written, mismatched=mismatched)


def read_latest(target: ExportTarget, asset_id: str) -> dict[str, Any] | None:
    """The asset's latest.json, or None when it has never been published."""
    return read_json(target, latest_key(asset_id))


def read_json(target: ExportTarget, key: str) -> dict[str, Any] | None:
    """A JSON record at the export target, or None when there is none."""
    data = target.read(key)
    if data is None:
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise PublishError(f"{target.uri_for(key)} is not valid JSON: {exc}") from None
