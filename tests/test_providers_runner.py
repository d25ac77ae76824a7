"""The money and safety layer on its own: runner records, budget, download checks, HTTP policy, registry."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest

from pipeline.providers import POOL_LIMITS, PROVIDERS, REMOTE_PROVIDERS, make_provider, pool_for, pricing
from pipeline.providers import http as provider_http
from pipeline.providers.base import JobHandle, JobStatus, OfflineProviderBase, ProviderError, RetryableProviderError
from pipeline.providers.runner import BudgetExceeded, SpendBudget, attach_image_urls, check_glb, generate
from pipeline.storage import LocalBlobStore
from tests.emulators.glbs import cube_glb
from tests.emulators.kit import make_request, open_vendor


class OfflineProvider(OfflineProviderBase):
    """Finishes inside submit, like `local` and `import`."""

    name = "offline-test"
    model = "test"

    def __init__(self):
        self.submits = 0

    def params(self, request):
        return {"flavour": "plain"}

    def cost_usd(self, params):
        return 0.0

    def submit(self, request, request_hash, client_id=None):
        self.submits += 1
        return JobHandle(self.name, f"offline-{request_hash[:8]}", request_hash, time.time(), result_glb=cube_glb())

    def poll(self, handle):
        return JobStatus("succeeded")

    def fetch(self, handle):
        raise AssertionError("offline providers have nothing to fetch")


def test_offline_providers_finish_inside_submit_and_are_reused(tmp_path):
    store, provider = LocalBlobStore(tmp_path), OfflineProvider()
    first = generate(provider, make_request(), store)
    again = generate(provider, make_request(), store)
    assert first.glb == cube_glb() and not first.reused and again.reused and provider.submits == 1
    assert first.metadata()["bytes"] == len(cube_glb())


def test_an_offline_provider_returning_garbage_stores_nothing(tmp_path):
    store, provider = LocalBlobStore(tmp_path), OfflineProvider()
    provider.submit = lambda request, h, c=None: JobHandle("x", "j", h, time.time(), result_glb=b"not a glb at all")
    with pytest.raises(ProviderError, match="not a GLB"):
        generate(provider, make_request(), store)
    assert not (tmp_path / "blobs").exists()


@pytest.mark.parametrize("data, message", [
    (b"<html>", "not a GLB"),
    (cube_glb()[:-8], "header says"),
    (cube_glb() + b"\0" * 8, "header says"),
])
def test_check_glb_refuses_incomplete_files(data, message):
    with pytest.raises(ProviderError, match=message):
        check_glb(data, source="t")


def test_check_glb_enforces_the_size_limit():
    with pytest.raises(ProviderError, match="over the 100-byte limit"):
        check_glb(cube_glb(), source="t", max_bytes=100)


def test_budget_is_per_run_shared_through_the_store_and_counts_each_generation_once(tmp_path):
    store = LocalBlobStore(tmp_path)
    a = SpendBudget(1.0, store=store, run_id="run-a")
    a.reserve("pixazo", "h1", 0.4, "crate")
    a.reserve("pixazo", "h1", 0.4, "crate")  # a retried step: same generation, charged once
    SpendBudget(1.0, store=store, run_id="run-a").reserve("pixazo", "h2", 0.4, "barrel")  # another step, same run
    with pytest.raises(BudgetExceeded, match=r"max_spend_usd=\$1.00, already spent \$0.80 on 2"):
        a.reserve("pixazo", "h3", 0.4, "lantern")
    assert SpendBudget(1.0, store=store, run_id="run-b").spent_usd == 0.0  # another run starts fresh
    a.release("h2")
    a.reserve("pixazo", "h3", 0.4, "lantern")
    assert a.spent_usd == pytest.approx(0.8)
    assert json.loads(store.get_record("budgets/run-a.json"))["charges"]["h3"]["asset_id"] == "lantern"


def test_budget_without_a_cap_or_for_free_providers_never_refuses():
    SpendBudget(None).reserve("runware", "h", 1e6)
    SpendBudget(0.0).reserve("local", "h", 0.0)
    with pytest.raises(BudgetExceeded):
        SpendBudget(0.0).reserve("pixazo", "h", 0.4)
    with pytest.raises(ProviderError):
        SpendBudget(-1.0)


def test_a_local_store_cannot_hand_out_image_urls(tmp_path):
    with pytest.raises(ProviderError, match="only image URLs.*KILN_STORE_URI=s3://"):
        attach_image_urls(make_request(), LocalBlobStore(tmp_path))


def test_the_runner_keeps_polling_through_a_vendor_outage(tmp_path, monkeypatch):
    monkeypatch.setattr(provider_http, "_sleep", lambda s: None)
    rig = open_vendor("goneural", tmp_path, monkeypatch)
    try:
        rig.emu.fail("poll", 503, times=7)  # more than one poll's worth of HTTP attempts
        gen = generate(rig.provider(max_attempts=3), make_request(), rig.store, log=rig.log)
        assert gen.glb == rig.emu.glb and rig.emu.submissions == 1
        assert any("polling job" in line and "failed" in line for line in rig.logs)
    finally:
        rig.emu.__exit__()


def test_the_vendor_slot_is_given_back_when_the_job_is_done_before_its_file_is_fetched(tmp_path, monkeypatch):
    rig = open_vendor("goneural", tmp_path, monkeypatch)
    try:
        provider, events = rig.provider(), []
        fetch = provider.fetch
        provider.fetch = lambda handle: events.append("fetch") or fetch(handle)
        gen = generate(provider, make_request(), rig.store, log=rig.log, vendor_done=lambda: events.append("done"))
        assert gen.glb == rig.emu.glb and events == ["done", "fetch"]
        # a reused result never reached the vendor: nothing to give back, nothing fetched
        events.clear()
        assert generate(rig.provider(), make_request(), rig.store, vendor_done=lambda: events.append("done")).reused
        assert events == []
    finally:
        rig.emu.__exit__()


def test_retry_after_takes_seconds_or_an_http_date():
    assert provider_http.retry_after_seconds("7") == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= provider_http.retry_after_seconds(when) <= 31
    assert provider_http.retry_after_seconds("soon") is None


def test_an_excessive_retry_after_fails_the_step_instead_of_blocking_it():
    waits: list[float] = []

    def handler(request):
        return httpx.Response(429, headers={"Retry-After": "86400"}, json={"message": "daily quota"})

    client = provider_http.HttpClient("t", base_url="http://vendor.test")
    client._api = httpx.Client(base_url="http://vendor.test", transport=httpx.MockTransport(handler))
    original, provider_http._sleep = provider_http._sleep, waits.append
    try:
        with pytest.raises(RetryableProviderError, match="asks to wait 86400 s"):
            client.request("GET", "/x", what="poll")
    finally:
        provider_http._sleep = original
    assert waits == []


def test_vendor_messages_are_found_in_every_documented_shape():
    shapes = [
        ({"errors": [{"code": "invalidApiKey", "message": "Invalid API key"}]}, "invalidApiKey: Invalid API key"),
        ({"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."},
         "Insufficient Balance: Your wallet does not have enough balance."),
        ({"status": "error", "messege": "Try again"}, "Try again"),
        ({"text": "**NETWORK ERROR**", "error_code": 1}, "**NETWORK ERROR**"),
    ]
    for body, expected in shapes:
        assert provider_http.message_from_json(body) == expected
    assert provider_http.redact("key=abc123secret!", ["abc123secret"]) == "key=[redacted]!"


def test_every_provider_has_a_pool_and_a_price():
    assert set(POOL_LIMITS) == set(PROVIDERS) and pool_for("runware") == "kiln/runware"
    assert all(pricing.price_usd(name) >= 0 for name in PROVIDERS)
    assert pricing.price_usd("pixazo") == 0.40 and pricing.PRICES["pixazo"].documented


def test_price_overrides_come_from_options_then_the_environment(monkeypatch):
    monkeypatch.setenv("KILN_PRICE_RUNWARE_USD", "0.65")
    assert pricing.price_usd("runware") == 0.65
    assert pricing.price_usd("runware", options={"price_usd": 0.9}) == 0.9
    monkeypatch.setenv("KILN_PRICE_RUNWARE_USD", "cheap")
    with pytest.raises(ProviderError, match="KILN_PRICE_RUNWARE_USD"):
        pricing.price_usd("runware")


@pytest.mark.parametrize("name", REMOTE_PROVIDERS)
def test_base_url_override_and_unknown_options(name, monkeypatch):
    monkeypatch.setenv(f"KILN_{name.upper()}_BASE_URL", "http://127.0.0.1:9/custom")
    assert make_provider(name).base_url == "http://127.0.0.1:9/custom"
    assert make_provider(name, base_url="http://other:1").base_url == "http://other:1"
    with pytest.raises(ProviderError, match="unknown option"):
        make_provider(name, options={"definitely_not_an_option": 1})
