"""Runware (Rodin Gen-2 `3dInference`) specifics through the emulator."""

from __future__ import annotations

import base64

import pytest

from pipeline.providers.base import ProviderError
from pipeline.providers.runner import generate
from tests.emulators.kit import make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("runware", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


def test_views_go_as_data_uris_first_view_first_with_alpha_seed_and_prompt(rig):
    request = make_request(views=3, prompt="a sturdy oak crate", seed=65535)
    generate(rig.provider(), request, rig.store)
    task = rig.emu.submitted_bodies[0]
    images = task["inputs"]["images"]
    assert [img.split(",", 1)[0] for img in images] == ["data:image/png;base64"] * 3
    assert images == [f"data:image/png;base64,{base64.b64encode(v.data).decode()}" for v in request.images]
    assert task["model"] == "hyper3d:rodin@gen-2" and task["deliveryMethod"] == "async"
    assert task["positivePrompt"] == "a sturdy oak crate" and task["seed"] == 65535
    assert task["settings"] == {"useOriginalAlpha": True}  # every view is a cut-out


def test_opaque_art_does_not_claim_original_alpha(rig):
    generate(rig.provider(), make_request(alpha=False), rig.store)
    assert "useOriginalAlpha" not in rig.emu.submitted_bodies[0].get("settings", {})


def test_text_to_3d_from_a_prompt_alone(rig):
    request = make_request(views=0, prompt="a low-poly stylized fox sitting upright")
    gen = generate(rig.provider(), request, rig.store)
    task = rig.emu.submitted_bodies[0]
    assert "inputs" not in task and task["positivePrompt"].startswith("a low-poly")
    assert gen.params["mode"] == "text-to-3d" and gen.glb == rig.emu.glb


@pytest.mark.parametrize("request_kwargs, message", [
    ({"seed": 70000}, "seed=70000 is out of range"),
    ({"views": 6}, "at most 5"),
    ({"views": 0}, "no concept images and no prompt"),
    ({"options": {"settings": {"polyCount": 20000, "quality": "high"}}}, "polyCount cannot be combined"),
    ({"options": {"settings": {"meshMode": "Raw", "addons": ["HighPack"]}}}, "meshMode = 'Raw'"),
    ({"options": {"quality": "high"}}, "unknown option"),
])
def test_invalid_requests_fail_before_any_request(rig, request_kwargs, message):
    with pytest.raises(ProviderError, match=message):
        generate(rig.provider(), make_request(**request_kwargs), rig.store)
    assert rig.emu.calls == []


def test_an_unanswered_submission_is_looked_up_by_task_uuid_not_sent_twice(rig):
    # Runware accepts the task but the answer arrives after the client's read timeout.
    rig.emu.fail("submit", 200, delay_s=0.6, after_work=True)
    gen = generate(rig.provider(timeout_s=0.2), make_request(), rig.store)
    assert rig.emu.submissions == 1 and gen.glb == rig.emu.glb
    assert sum(1 for c in rig.emu.calls if c == ("POST", "/v1")) >= 3  # submit, lookup, polls


def test_highpack_costs_extra(rig):
    provider = rig.provider()
    base = provider.cost_usd(provider.params(make_request()))
    highpack = provider.cost_usd(provider.params(make_request(options={"settings": {"addons": ["HighPack"]}})))
    assert highpack == pytest.approx(3 * base)


@pytest.mark.parametrize("settings, message", [
    ({"quality": "hihg"}, "settings.quality='hihg' is not one of.*did you mean 'high'"),
    ({"meshMode": "quad"}, "did you mean 'Quad'"),
    ({"material": "Metal"}, "settings.material='Metal'"),
    ({"addons": ["Highpack"]}, "did you mean 'HighPack'"),
    ({"polyCount": 300_000}, "polyCount=300000 is out of range"),
    ({"polyCount": 300_000, "meshMode": "Raw"}, None),
    ({"TAPose": "yes"}, "TAPose='yes' must be true or false"),
    ({"qualty": "high"}, "settings key='qualty'.*did you mean 'quality'"),
])
def test_rodin_settings_are_checked_against_the_documented_values(rig, settings, message):
    provider = rig.provider()
    if message is None:
        assert provider.params(make_request(options={"settings": settings}))["settings"]["polyCount"] == 300_000
        return
    with pytest.raises(ProviderError, match=message):
        provider.params(make_request(options={"settings": settings}))
