"""goneural.ai (`premium-v1` image-to-3d) specifics through the emulator."""

from __future__ import annotations

import pytest

from pipeline.providers.base import ProviderError
from pipeline.providers import make_provider
from pipeline.providers.runner import SpendBudget, generate
from tests.emulators.kit import make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("goneural", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


def test_first_view_is_uploaded_multipart_with_face_limit_pbr_and_seed(rig):
    request = make_request(views=1, seed=99, options={"faceLimit": 20000, "pbr": False})
    gen = generate(rig.provider(), request, rig.store)
    body = rig.emu.submitted_bodies[0]
    assert body["fields"] == {"version": "premium-v1", "pbr": "false", "faceLimit": "20000", "seed": "99"}
    assert body["files"]["image"][0] == "00_view.png" and body["files"]["image"][1] == len(request.images[0].data)
    assert gen.seed == 99 and gen.glb == rig.emu.glb


@pytest.mark.parametrize("request_kwargs, message", [
    ({"views": 0, "prompt": "a crate"}, "has no concept image; this provider has no text-to-3D mode"),
    ({"options": {"faceLimit": 0}}, "faceLimit=0 is out of range"),
    ({"options": {"faceLimit": "many"}}, "faceLimit='many' must be an integer"),
    ({"options": {"version": "fast-v1"}}, "version='fast-v1'"),
    ({"views": 2}, "has 2 views; this provider takes exactly one image .* runware, scenario or pixazo"),
])
def test_invalid_requests_fail_before_any_request(rig, request_kwargs, message):
    with pytest.raises(ProviderError, match=message):
        generate(rig.provider(), make_request(**request_kwargs), rig.store)
    assert rig.emu.calls == []


def test_a_failed_task_says_it_was_refunded(rig):
    rig.emu.fail_next_job("unsupported subject")
    with pytest.raises(ProviderError, match="unsupported subject \\(the task was refunded\\)"):
        generate(rig.provider(), make_request(), rig.store)


def test_a_refunded_task_releases_its_reservation_and_credits_are_read_back(rig):
    budget = SpendBudget(10.0)
    rig.emu.fail_next_job("unsupported subject")
    with pytest.raises(ProviderError, match="not charged"):
        generate(rig.provider(), make_request("crate_01"), rig.store, budget=budget)
    assert budget.spent_usd == 0.0
    gen = generate(rig.provider(usd_per_credit=0.02), make_request("crate_02"), rig.store, budget=budget)
    assert gen.cost_usd == pytest.approx(20 * 0.02) and gen.cost_source == "vendor"  # creditUsed 20
    assert budget.spent_usd == pytest.approx(0.4)


def test_the_old_name_fails_with_a_pointer_to_goneural():
    with pytest.raises(ProviderError, match="renamed 'goneural'.*GONEURAL_API_KEY.*KILN_GONEURAL_BASE_URL"):
        make_provider("neural4d")
