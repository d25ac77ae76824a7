"""Scenario (Rodin Gen-2.5) specifics through the emulator: uploads, options, temporary URLs."""

from __future__ import annotations

import base64

import pytest

from pipeline.providers.base import ProviderError
from pipeline.providers.runner import SpendBudget, generate
from tests.emulators.kit import SECRETS, make_request, open_vendor


@pytest.fixture
def rig(tmp_path, monkeypatch):
    rig = open_vendor("scenario", tmp_path, monkeypatch)
    yield rig
    rig.emu.__exit__()


def test_views_are_uploaded_as_assets_and_documented_options_are_sent(rig):
    options = {"tier": "Gen-2.5-High", "qualityMeshOption": "18K Quad", "material": "PBR",
               "geometryInstructMode": "creative", "TAPose": True, "hdTexture": True}
    gen = generate(rig.provider(), make_request(views=3, seed=1234, options=options), rig.store)
    assert [u["name"] for u in rig.emu.uploads.values()] == ["00_view.png", "01_view.png", "02_view.png"]
    body = rig.emu.submitted_bodies[0]
    assert body["images"] == list(rig.emu.uploads)  # upload order = view order, first view first
    assert {k: body[k] for k in options} == options
    assert body["seed"] == 1234 and body["useOriginalAlpha"] is True and body["addons"] == ""
    assert gen.tier == "Gen-2.5-High" and gen.seed == 1234


def test_basic_auth_is_key_colon_secret(rig):
    generate(rig.provider(), make_request(), rig.store)
    pair = f"{SECRETS['SCENARIO_SDK_API_KEY']}:{SECRETS['SCENARIO_SDK_API_SECRET']}"
    assert rig.emu.last_credential == base64.b64encode(pair.encode()).decode()


def test_an_expired_asset_url_is_resolved_again(rig):
    rig.emu.expire_downloads = 1
    gen = generate(rig.provider(), make_request(), rig.store)
    assert gen.glb == rig.emu.glb
    resolves = [c for c in rig.emu.calls if c[0] == "GET" and c[1].startswith("/v1/assets/")]
    assert len(resolves) == 2 and resolves[0] == resolves[1]


def test_the_glb_is_picked_among_result_assets(rig):
    gen = generate(rig.provider(), make_request(options={"previewRender": True}), rig.store)
    assert gen.glb == rig.emu.glb


@pytest.mark.parametrize("options, message", [
    ({"geometryInstructMode": "wild"}, "geometryInstructMode='wild'"),
    ({"TAPose": "yes"}, "TAPose='yes' must be true or false"),
    ({"addons": "UltraPack"}, "addons='UltraPack'"),
    ({"tierz": "x"}, "unknown option"),
])
def test_invalid_options_fail_before_any_request(rig, options, message):
    with pytest.raises(ProviderError, match=message):
        generate(rig.provider(), make_request(options=options), rig.store)
    assert rig.emu.calls == []


def test_extreme_high_bills_double_and_highpack_extra(rig):
    p = rig.provider()
    base = p.cost_usd(p.params(make_request()))
    assert p.cost_usd(p.params(make_request(options={"tier": "Gen-2.5-Extreme-High"}))) == pytest.approx(2 * base)
    assert p.cost_usd(p.params(make_request(options={"addons": "HighPack"}))) == pytest.approx(3 * base)
    assert rig.provider(price_usd=1.25).cost_usd({"tier": "Gen-2.5-Medium"}) == 1.25


@pytest.mark.parametrize("options, message", [
    ({"tier": "Gen-2.5-Extreme-high"}, "tier='Gen-2.5-Extreme-high' is not one of.*did you mean 'Gen-2.5-Extreme-High'"),
    ({"tier": "Gen-2.5-Premium"}, "tier='Gen-2.5-Premium' is not one of"),
    ({"qualityMeshOption": "500k triangles"}, "did you mean '500K Triangle'"),
    ({"material": "pbr"}, "did you mean 'PBR'"),
    ({"isSymmetric": "yes"}, "isSymmetric='yes' is not one of"),
    ({"textureMode": "ultra"}, "textureMode='ultra'"),
    ({"isMicro": True}, "isMicro=true only works with tier 'Gen-2.5-Extreme-High'"),
])
def test_mistyped_options_are_refused_with_the_nearest_value_before_anything_is_reserved(rig, options, message):
    budget = SpendBudget(10.0)
    provider = rig.provider()
    with pytest.raises(ProviderError, match=message) as err:
        provider.params(make_request(options=options))  # what concept_art calls to validate [options] early
    assert "\n" not in str(err.value)
    with pytest.raises(ProviderError, match=message):
        generate(rig.provider(), make_request(options=options), rig.store, budget=budget)
    assert rig.emu.calls == [] and budget.spent_usd == 0.0


def test_a_premium_tier_is_budgeted_double_and_credits_are_read_back(rig):
    provider = rig.provider(usd_per_credit=0.01)
    base = provider.cost_usd(provider.params(make_request()))
    extreme = provider.cost_usd(provider.params(make_request(options={"tier": "Gen-2.5-Extreme-High"})))
    assert extreme == pytest.approx(2 * base)
    gen = generate(provider, make_request(options={"tier": "Gen-2.5-Extreme-High"}), rig.store)
    assert gen.cost_usd == pytest.approx(0.8) and gen.cost_source == "vendor"  # creativeUnitsCost 80
