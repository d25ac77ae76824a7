"""ModelsLab (`image_to_3d`) specifics through the emulator: ranges, URL-only input, processing."""

from __future__ import annotations

import pytest

from pipeline.providers.base import ProviderError
from pipeline.providers.runner import generate
from pipeline.storage import LocalBlobStore
from tests.emulators.kit import SECRETS, make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("modelslab", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


@pytest.mark.parametrize("key, value", [
    ("ss_sampling_steps", 0), ("ss_sampling_steps", 51), ("slat_sampling_steps", 60),
    ("slat_guidance_strength", 10.5), ("ss_guidance_strength", -1), ("mesh_simplify", 0.85),
    ("mesh_simplify", 0.99), ("resolution", 1024), ("chunk_size", 12001), ("seed", -3),
])
def test_documented_ranges_are_checked_before_any_request_naming_the_value(rig, key, value):
    with pytest.raises(ProviderError) as err:
        generate(rig.provider(), make_request(options={key: value}, seed=None), rig.store)
    assert f"{key}={value!r}" in str(err.value)
    assert rig.emu.calls == []


def test_a_local_blob_store_fails_with_the_s3_how_to_before_any_request(rig, tmp_path):
    with pytest.raises(ProviderError, match="KILN_STORE_URI=s3://"):
        generate(rig.provider(), make_request(), LocalBlobStore(tmp_path / "local-store"))
    assert rig.emu.calls == []


def test_key_travels_in_the_body_and_the_image_as_a_presigned_url(rig):
    request = make_request(views=1, options={"resolution": 512, "mesh_simplify": 0.95})
    generate(rig.provider(), request, rig.store)
    body = rig.emu.submitted_bodies[0]
    assert body["image"].startswith(f"{rig.emu.url}/_blobs/{request.images[0].sha256}?X-Amz-")
    assert body["resolution"] == 512 and body["mesh_simplify"] == 0.95 and body["output_format"] == "glb"
    assert ("GET", f"/_blobs/{request.images[0].sha256}") in rig.emu.calls  # the vendor fetched it
    assert rig.emu.last_credential == SECRETS["MODELSLAB_API_KEY"]


def test_an_instant_success_needs_no_fetch(tmp_path, monkeypatch):
    rig = open_vendor("modelslab", tmp_path, monkeypatch, instant=True)
    try:
        gen = generate(rig.provider(), make_request(), rig.store)
        assert gen.glb == rig.emu.glb
        assert not any("/3d/fetch/" in c[1] for c in rig.emu.calls)
    finally:
        rig.emu.__exit__()


def test_a_file_not_there_yet_is_retried(rig):
    rig.emu.fail("file", 404, times=2)  # output links can lag the success status (future_links)
    assert generate(rig.provider(), make_request(), rig.store).glb == rig.emu.glb


def test_several_views_are_refused_instead_of_silently_sending_the_first(rig):
    with pytest.raises(ProviderError, match="has 2 views; this provider takes exactly one image"):
        generate(rig.provider(), make_request(views=2), rig.store)
    assert rig.emu.calls == []
