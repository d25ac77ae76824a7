"""Self-hosted Hunyuan3D-2 api_server specifics through the emulator."""

from __future__ import annotations

import pytest

from pipeline.providers import make_provider
from pipeline.providers.base import ProviderError, RetryableProviderError
from pipeline.providers.runner import generate
from tests.emulators.kit import FAST, make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("hunyuan3d", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


def test_base_url_comes_from_the_environment_and_no_key_is_needed(rig, monkeypatch):
    monkeypatch.setenv("KILN_HUNYUAN3D_BASE_URL", rig.emu.url)
    provider = make_provider("hunyuan3d", options=FAST)
    assert provider.base_url == rig.emu.url
    gen = generate(provider, make_request(seed=7, options={"octree_resolution": 256}), rig.store)
    body = rig.emu.submitted_bodies[0]
    assert body["seed"] == 7 and body["octree_resolution"] == 256 and body["type"] == "glb"
    assert gen.glb == rig.emu.glb and gen.cost_usd == 0.0


def test_the_image_is_plain_base64_of_the_first_view(rig):
    request = make_request(views=2)
    generate(rig.provider(), request, rig.store)
    # The server b64decodes `image` directly: a data-URI prefix would break it, so the emulator
    # decodes strictly, and the decoded bytes must be the first view.
    assert rig.emu.submitted_bodies[0]["image_sha256"] == request.images[0].sha256


def test_generate_mode_returns_the_file_in_one_request(rig):
    gen = generate(rig.provider(mode="generate"), make_request(), rig.store)
    assert gen.glb == rig.emu.glb
    assert [c[1] for c in rig.emu.calls] == ["/generate"]


def test_generate_mode_reports_the_server_text(rig):
    rig.emu.fail_next_job("boom")
    with pytest.raises(ProviderError, match="NETWORK ERROR DUE TO HIGH TRAFFIC"):
        generate(rig.provider(mode="generate"), make_request(), rig.store)


def test_a_generation_that_never_finishes_hits_the_deadline_and_is_resumed_later(rig):
    rig.emu.stuck_jobs = 1  # the server's worker thread died: /status says "processing" forever
    with pytest.raises(RetryableProviderError, match="did not finish within"):
        generate(rig.provider(deadline_s=0.1), make_request(), rig.store)
    for job in rig.emu.jobs.values():
        job.stuck = False  # the operator fixed the server
    gen = generate(rig.provider(), make_request(), rig.store)
    assert gen.resumed and rig.emu.submissions == 1


def test_text_only_is_refused_before_any_request(rig):
    with pytest.raises(ProviderError, match="no working text-to-3D"):
        generate(rig.provider(), make_request(views=0, prompt="a crate"), rig.store)
    assert rig.emu.calls == []
