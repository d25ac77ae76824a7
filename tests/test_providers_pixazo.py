"""Pixazo gateway (Hyper3D Rodin v1) specifics through the emulator."""

from __future__ import annotations

import pytest

from pipeline.providers.base import ProviderError, RetryableProviderError
from pipeline.providers.runner import UnresolvedSubmission, generate
from tests.emulators.kit import make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("pixazo", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


def test_prompt_is_built_from_asset_id_and_category_when_missing(rig):
    generate(rig.provider(), make_request("oak_barrel-02", category="prop"), rig.store)
    generate(rig.provider(), make_request("crate_01", prompt="a sturdy oak crate"), rig.store)
    first, second = rig.emu.submitted_bodies
    assert first["prompt"].startswith("oak barrel 02, a prop game asset")
    assert second["prompt"] == "a sturdy oak crate"
    assert first["geometry_file_format"] == "glb" and first["tier"] == "Regular"
    assert len(first["input_image_urls"]) == 1 and "/_blobs/" in first["input_image_urls"][0]


def test_the_returned_polling_url_is_followed(rig):
    gen = generate(rig.provider(), make_request(), rig.store)
    polls = [c for c in rig.emu.calls if c[0] == "GET" and c[1] == f"/v2/requests/status/{gen.job_id}"]
    assert len(polls) == 3  # QUEUED, PROCESSING, COMPLETED


def test_a_polling_url_on_another_host_is_not_given_the_key(tmp_path, monkeypatch):
    rig = open_vendor("pixazo", tmp_path, monkeypatch, polling_host="http://attacker.invalid:9")
    try:
        gen = generate(rig.provider(), make_request(), rig.store)  # polled on the gateway's own origin
        assert gen.glb == rig.emu.glb
    finally:
        rig.emu.__exit__()


def test_error_status_says_not_charged(tmp_path, monkeypatch):
    rig = open_vendor("pixazo", tmp_path, monkeypatch, system_error=True)
    try:
        rig.emu.fail_next_job("GPU node lost")
        with pytest.raises(ProviderError, match="not charge.*GPU node lost"):
            generate(rig.provider(), make_request(), rig.store)
    finally:
        rig.emu.__exit__()


@pytest.mark.parametrize("status, body, expected", [
    (400, {"error": "Model not found", "message": "Model 'hyper3d-rodin-259' not found or is disabled"},
     "HTTP 400: Model not found: Model 'hyper3d-rodin-259' not found"),
    (401, None, "HTTP 401.*check PIXAZO_API_KEY"),
    (403, {"error": "Forbidden", "message": "subscription inactive"}, "HTTP 403: Forbidden: subscription inactive"),
])
def test_documented_errors_are_clear_and_not_retried(rig, status, body, expected, monkeypatch):
    rig.emu.fail("submit", status, body=body)
    with pytest.raises(ProviderError, match=expected) as err:
        generate(rig.provider(), make_request(), rig.store)
    assert not isinstance(err.value, RetryableProviderError) and rig.emu.submissions == 0


def test_a_persistent_429_gives_a_retryable_error_after_bounded_attempts(rig, monkeypatch):
    monkeypatch.setattr("pipeline.providers.http._sleep", lambda s: None)
    rig.emu.fail("submit", 429, times=10, headers={"Retry-After": "1"})
    with pytest.raises(RetryableProviderError, match="after 3 attempts: HTTP 429") as err:
        generate(rig.provider(max_attempts=3), make_request(), rig.store)
    assert err.value.accepted is False  # 429: the gateway took nothing, so the intent is closed
    assert len([c for c in rig.emu.calls if c[0] == "POST"]) == 3 and rig.emu.submissions == 0


def test_a_500_on_submit_is_not_resent_behind_the_gateway(rig):
    # The gateway may have forwarded the request before failing: never sent again automatically.
    rig.emu.fail("submit", 500, times=10)
    with pytest.raises(UnresolvedSubmission, match="HTTP 500.*force_resubmit"):
        generate(rig.provider(max_attempts=3), make_request(), rig.store)
    assert len([c for c in rig.emu.calls if c[0] == "POST"]) == 1


def test_the_glb_is_picked_from_media_url_not_the_first_file():
    from pipeline.providers.pixazo import pick_glb
    assert pick_glb("pixazo", "r1", ["https://cdn/x/preview.png", "https://cdn/x/model.glb?sig=1"]).endswith("?sig=1")
    assert pick_glb("pixazo", "r1", ["https://cdn/x/result"]) == "https://cdn/x/result"
    with pytest.raises(ProviderError, match="returned 2 files .* none of them end in .glb"):
        pick_glb("pixazo", "r1", ["https://cdn/a.png", "https://cdn/b.obj"])


def test_text_to_3d_sends_no_image_urls(rig):
    generate(rig.provider(), make_request(views=0, prompt="a carved stone idol"), rig.store)
    assert "input_image_urls" not in rig.emu.submitted_bodies[0]


def test_the_emulator_refuses_what_the_gateway_refuses_and_the_client_refuses_it_first(rig):
    import httpx

    from tests.emulators.kit import SECRETS

    answer = httpx.post(f"{rig.emu.base_url}/hyper3d-rodin-request", json={"prompt": "a crate", "tier": "premium"},
                        headers={"Ocp-Apim-Subscription-Key": SECRETS["PIXAZO_API_KEY"]})
    assert answer.status_code == 400 and "tier must be one of" in answer.text
    with pytest.raises(ProviderError, match="tier='premium' is not one of .*did you mean 'Premium'"):
        rig.provider().params(make_request(options={"tier": "premium"}))
