"""Publishing to a real S3 server (SeaweedFS) and to a local folder: bytes, checksums,
Content-Types, the never-overwrite versioning rule, and interrupted publishes."""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import json
import os

import pytest
from botocore.exceptions import EndpointConnectionError

from pipeline.export.catalog import collect_assets, rebuild_catalog
from pipeline.export.profiles import build_profile, level_glbs
from pipeline.export.publish import LocalTarget, PublishError, S3Target, open_target, publish, read_latest
from pipeline.storage import HEAD_FIRST_BYTES, RecentBytes, S3BlobStore, StorageError
from tests.test_export_profiles import sample_input

pytest_plugins = ["tests.s3server"]
pytestmark = pytest.mark.live

PROFILES = ("web", "unity", "unreal")


def package(**kwargs):
    inp = sample_input(**kwargs)
    return inp, {p: build_profile(inp, p) for p in PROFILES}, level_glbs(inp)


def snapshot(client, bucket: str, prefix: str) -> dict[str, tuple[str, str]]:
    """key -> (ETag, LastModified) of every object under prefix."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = (obj["ETag"], str(obj["LastModified"]))
    return out


@contextlib.contextmanager
def requests_made(client):
    """Counts the S3 requests `client` makes inside the block, by operation."""
    calls: collections.Counter = collections.Counter()

    def count(model, **_):
        calls[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.s3", count)


class FailingClient:
    """A boto3 client that fails every upload from the `fail_from`-th on (a dead link mid-publish)."""

    def __init__(self, client, fail_from: int):
        self._client, self.fail_from, self.uploads = client, fail_from, 0

    def _upload(self, name):
        def call(*args, **kwargs):
            self.uploads += 1
            if self.uploads >= self.fail_from:
                raise EndpointConnectionError(endpoint_url="http://injected-failure")
            return getattr(self._client, name)(*args, **kwargs)
        return call

    def __getattr__(self, name):
        if name in ("put_object", "upload_fileobj"):
            return self._upload(name)
        return getattr(self._client, name)


def test_objects_match_the_manifests_with_checksums_and_types(s3_server):
    client = s3_server.client()
    uri = s3_server.uri()
    target = open_target(uri)
    assert isinstance(target, S3Target)
    inp, files, levels = package()
    result = publish(target, inp.asset_id, inp.version, files, levels)
    assert not result.already_published and result.latest_updated
    prefix = uri.split("/", 3)[3]
    for profile in PROFILES:
        manifest = json.loads(next(f.data for f in files[profile] if f.name == "manifest.json"))
        for entry in manifest["files"]:
            key = f"{prefix}/crate/{inp.version}/{profile}/{entry['name']}"
            assert result.uris[profile][entry["name"]] == f"s3://{s3_server.bucket}/{key}"
            body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"] and len(body) == entry["bytes"]
            head = client.head_object(Bucket=s3_server.bucket, Key=key, ChecksumMode="ENABLED")
            assert head["ContentType"] == entry["content_type"]
            assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(entry["sha256"])).decode()
            assert head["Metadata"]["sha256"] == entry["sha256"]
    kinds = {k: client.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/crate/{inp.version}/web/{k}")["ContentType"]
             for k in ("crate.glb", "manifest.json", "preview.png")}
    assert kinds == {"crate.glb": "model/gltf-binary", "manifest.json": "application/json", "preview.png": "image/png"}
    latest = read_latest(target, "crate")
    assert latest["version"] == inp.version
    assert [lv["uri"] for lv in latest["lods"]] == [
        f"s3://{s3_server.bucket}/{prefix}/crate/{inp.version}/lods/crate_LOD{n}.glb" for n in range(3)]
    assert target.asset_ids() == ["crate"]
    catalog_uri, index_uri, count = rebuild_catalog(target)
    assert count == 1 and catalog_uri == f"{uri}/catalog.json"
    head = client.head_object(Bucket=s3_server.bucket, Key=f"{prefix}/index.html")
    assert head["ContentType"].startswith("text/html")
    catalog = json.loads(client.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/catalog.json")["Body"].read())
    assert catalog["assets"][0]["exports"]["web"]["uri"] == result.uris["web"]["crate.glb"]


def test_large_files_go_multipart_and_are_never_overwritten(s3_server):
    client = s3_server.client()
    target = S3Target(s3_server.uri(), multipart_threshold=5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024)
    assert target.write_immutable("big/texture.glb", data, "model/gltf-binary") is True
    key = f"{target.prefix}/big/texture.glb"
    head = client.head_object(Bucket=s3_server.bucket, Key=key, ChecksumMode="ENABLED")
    assert int(head["ChecksumSHA256"].rsplit("-", 1)[1]) >= 2  # a composite checksum: each part was verified
    assert head["ContentType"] == "model/gltf-binary"
    assert client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == data
    assert target.write_immutable("big/texture.glb", data, "model/gltf-binary") is False
    with pytest.raises(PublishError, match="never overwritten"):
        target.write_immutable("big/texture.glb", data[:-1], "model/gltf-binary")
    assert client.head_object(Bucket=s3_server.bucket, Key=key)["ETag"] == head["ETag"]


def test_republishing_changes_nothing_and_a_new_version_gets_a_new_prefix(s3_server):
    client = s3_server.client()
    uri = s3_server.uri()
    prefix = uri.split("/", 3)[3]
    target = open_target(uri)
    inp, files, levels = package()
    first = publish(target, inp.asset_id, inp.version, files, levels)
    before = snapshot(client, s3_server.bucket, prefix)

    again = publish(target, inp.asset_id, inp.version, files, levels)
    assert again.already_published and not again.latest_updated and again.written == 0
    assert snapshot(client, s3_server.bucket, prefix) == before

    inp2, files2, levels2 = package(cost=0.75)
    assert inp2.version != inp.version
    second = publish(target, inp2.asset_id, inp2.version, files2, levels2)
    assert not second.already_published
    after = snapshot(client, s3_server.bucket, prefix)
    assert {k: v for k, v in after.items() if k in before and not k.endswith("latest.json")} == \
        {k: v for k, v in before.items() if not k.endswith("latest.json")}
    new_keys = set(after) - set(before)
    assert new_keys and all(k.startswith(f"{prefix}/crate/{inp2.version}/") for k in new_keys)
    assert read_latest(target, "crate")["version"] == inp2.version
    assert all(f["path"].startswith(f"crate/{inp.version}/{f['profile']}/") for f in first.files)


def test_an_interrupted_publish_leaves_latest_on_the_previous_version(s3_server):
    client = s3_server.client()
    uri = s3_server.uri()
    prefix = uri.split("/", 3)[3]
    inp, files, levels = package()
    publish(open_target(uri), inp.asset_id, inp.version, files, levels)

    inp2, files2, levels2 = package(cost=1.5)
    flaky = S3Target(uri, client=FailingClient(client, fail_from=5), attempts=2, backoff_s=0.0)
    with pytest.raises(PublishError, match="injected-failure"):
        publish(flaky, inp2.asset_id, inp2.version, files2, levels2)
    latest = read_latest(open_target(uri), "crate")
    assert latest["version"] == inp.version
    partial = snapshot(client, s3_server.bucket, f"{prefix}/crate/{inp2.version}")
    assert len(partial) == 4 and not any(k.endswith("publication.json") for k in partial)

    # The next attempt finishes the version without rewriting what the failed one left.
    done = publish(open_target(uri), inp2.asset_id, inp2.version, files2, levels2)
    assert not done.already_published
    after = snapshot(client, s3_server.bucket, f"{prefix}/crate/{inp2.version}")
    assert {k: after[k] for k in partial} == partial
    assert done.written == len(after) - len(partial) + 1  # the rest, publication.json, and latest.json
    assert read_latest(open_target(uri), "crate")["version"] == inp2.version


def test_s3_restarted_mid_publish_leaves_no_half_published_version(s3_server):
    """The S3 server crashes (kill -9) in the middle of a publish and comes back: readers never see
    a half-published version, and the next publish completes it with every object intact."""
    client = s3_server.client()
    uri = s3_server.uri()
    prefix = uri.split("/", 3)[3]
    inp, files, levels = package()
    publish(open_target(uri), inp.asset_id, inp.version, files, levels)

    class CrashingClient(FailingClient):
        def _upload(self, name):
            def call(*args, **kwargs):
                self.uploads += 1
                if self.uploads == self.fail_from:
                    s3_server.kill()
                return getattr(self._client, name)(*args, **kwargs)
            return call

    inp2, files2, levels2 = package(cost=1.5)
    crashing = S3Target(uri, client=CrashingClient(client, fail_from=6), attempts=2, backoff_s=0.0)
    try:
        with pytest.raises(PublishError):
            publish(crashing, inp2.asset_id, inp2.version, files2, levels2)
    finally:
        s3_server.start()  # same ports, same data folder
    target = open_target(uri)
    assert read_latest(target, "crate")["version"] == inp.version
    partial = snapshot(client, s3_server.bucket, f"{prefix}/crate/{inp2.version}")
    assert partial and not any(k.endswith("publication.json") for k in partial)
    entries, _ = collect_assets(target, {"crate": None})
    assert [e["version"] for e in entries] == [inp.version]  # the catalog shows the complete version

    done = publish(target, inp2.asset_id, inp2.version, files2, levels2)
    assert not done.already_published and read_latest(target, "crate")["version"] == inp2.version
    for profile, profile_files in files2.items():  # every object of the finished version is whole
        for f in profile_files:
            key = f"{prefix}/crate/{inp2.version}/{profile}/{f.name}"
            body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == f.sha256, key


def test_local_publish_is_atomic_and_refuses_to_change_published_bytes(tmp_path):
    target = open_target(str(tmp_path / "exports"))
    assert isinstance(target, LocalTarget)
    inp, files, levels = package()
    stray = tmp_path / "exports" / "crate" / inp.version / "web" / "crate.glb"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not the published bytes")
    with pytest.raises(PublishError, match="already exists with different bytes"):
        publish(target, inp.asset_id, inp.version, files, levels)
    assert read_latest(target, "crate") is None
    stray.unlink()
    result = publish(target, inp.asset_id, inp.version, files, levels, source_sha256="s" * 64,
                     extra={"provider": "runware", "lods": [{"level": 0, "triangles": 1, "lod_method": "source"}]})
    latest = read_latest(target, "crate")
    assert latest["source_sha256"] == "s" * 64 and latest["provider"] == "runware"
    lod0 = latest["lods"][0]  # extra fills gaps in the LOD table but never replaces what was published
    assert lod0["triangles"] == inp.levels[0].model.triangle_count and lod0["lod_method"] == "source"
    assert lod0["uri"] == str(tmp_path / "exports" / "crate" / inp.version / "lods" / "crate_LOD0.glb")
    assert result.latest_uri == str(tmp_path / "exports" / "crate" / "latest.json")
    on_disk = {p.relative_to(tmp_path / "exports").as_posix() for p in (tmp_path / "exports").rglob("*") if p.is_file()}
    assert not any(".tmp-" in p for p in on_disk)
    assert {f["path"] for f in result.files} | {f"crate/{inp.version}/publication.json", "crate/latest.json"} == on_disk
    for f in result.files:
        assert hashlib.sha256((tmp_path / "exports" / f["path"]).read_bytes()).hexdigest() == f["sha256"]


def test_a_complete_version_stands_even_if_a_rebuild_differs(tmp_path):
    """Versions named from upstream hashes may not cover every byte (e.g. the cost): the first
    publication stands, nothing is written, and the differences are reported."""
    target = open_target(str(tmp_path))
    builds = []
    for cost in (0.25, 2.0):
        inp = sample_input(cost=cost)
        inp.version = "v-from-lod-hash"
        builds.append(({p: build_profile(inp, p) for p in PROFILES}, level_glbs(inp)))
    publish(target, "crate", "v-from-lod-hash", *builds[0])
    again = publish(target, "crate", "v-from-lod-hash", *builds[1])
    assert again.already_published and again.written == 0
    assert again.mismatched == sorted(f"crate/v-from-lod-hash/{p}/manifest.json" for p in PROFILES)
    published = next(f for f in again.files if f["path"].endswith("web/manifest.json"))
    assert json.loads((tmp_path / published["path"]).read_bytes())["cost_usd"] == 0.25
    assert hashlib.sha256((tmp_path / published["path"]).read_bytes()).hexdigest() == published["sha256"]


def test_blob_store_reads_back_what_it_wrote_and_heads_only_large_blobs(s3_server, monkeypatch):
    client = s3_server.client()
    store = S3BlobStore(s3_server.uri())
    fresh = lambda: monkeypatch.setattr(S3BlobStore, "recent", RecentBytes(64 * 1024 * 1024))  # noqa: E731
    fresh()
    small, large = b"preview" * 100, os.urandom(HEAD_FIRST_BYTES)
    with requests_made(client) as calls:
        small_sha = store.put(small)
        assert calls == {"PutObject": 1}  # no HEAD first: a small PUT costs what a HEAD does
        assert store.get(small_sha) == small and store.exists(small_sha) and store.put(small) == small_sha
        assert calls == {"PutObject": 1}  # a later step of the run reads it from the process
        large_sha = store.put(large)
        assert calls == {"PutObject": 2, "HeadObject": 1}
    fresh()  # another process
    with requests_made(client) as calls:
        assert store.put(large) == large_sha
        assert calls == {"HeadObject": 1}  # already stored: not uploaded again
        assert store.get(small_sha) == small
        assert calls["GetObject"] == 1
    fresh()
    client.put_object(Bucket=s3_server.bucket, Key=store.location(small_sha).split("/", 3)[3], Body=b"edited")
    with pytest.raises(StorageError, match="corrupt"):
        store.get(small_sha)

    recent = RecentBytes(100)
    for name in "abcde":
        recent.add(("s3://b", name), name.encode() * 24)
        recent.get(("s3://b", "a")) if name == "b" else None  # a read makes `a` recent again
    assert recent.get(("s3://b", "b")) is None and recent.get(("s3://b", "a")) == b"a" * 24  # 120 > 100 bytes: b out
    recent.add(("s3://b", "big"), b"x" * 26)  # over a quarter of the limit: not kept
    assert recent.get(("s3://b", "big")) is None and recent.size == 96


def test_a_new_version_is_published_with_one_listing_and_no_lookup_per_object(s3_server):
    client = s3_server.client()
    target = S3Target(s3_server.uri())
    inp, files, glbs = package()
    with requests_made(client) as calls:
        result = publish(target, "crate", inp.version, files, glbs)
    assert calls["ListObjectsV2"] == 1 and calls["HeadObject"] == 0, calls
    assert calls["PutObject"] == result.written  # every object, publication.json and latest.json once
