"""Write-ahead intents: a paid generation is never submitted twice, whatever happens to the answer.

Every billed vendor through its emulator: the intent is durable before the vendor takes the job;
an answer lost after acceptance (a gateway 502, a reset mid-body, a timeout) never leads to a second
paid job: Runware is asked by its taskUUID, the others fail with instructions until an artist forces
a resubmission (once per decision); only provably-refused submissions are forgotten; a broken result
file is fetched at most twice; a vendor restart that forgets a job mid-poll is waited out.
"""

from __future__ import annotations

import json

import pytest

from pipeline.providers import http as provider_http
from pipeline.providers.base import ProviderError, RetryableProviderError
from pipeline.providers.runner import SpendBudget, UnresolvedSubmission, generate
from tests.emulators.kit import VENDORS, make_request, open_vendor
from tests.emulators.server import RESET

BILLED = [n for n in VENDORS if VENDORS[n].billed]
NO_LOOKUP = [n for n in BILLED if n != "runware"]


@pytest.fixture
def sleeps(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(provider_http, "_sleep", waits.append)
    return waits


def record(rig, request, kind: str) -> dict | None:
    provider = rig.provider()
    h = request.fingerprint(provider.name, provider.params(request))
    raw = rig.store.get_record(f"generations/{h}/{kind}.json")
    return json.loads(raw) if raw else None


def open_rig(name, tmp_path, monkeypatch):
    return open_vendor(name, tmp_path, monkeypatch)


@pytest.mark.parametrize("name", BILLED)
def test_the_intent_is_durable_before_the_vendor_takes_the_job(name, tmp_path, monkeypatch):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        request = make_request()
        seen: list[dict | None] = []
        rig.emu.on_new_job = lambda job: seen.append(record(rig, request, "intent"))
        generate(rig.provider(), request, rig.store)
        assert len(seen) == 1 and seen[0]["state"] == "sending" and seen[0]["sent_at"] > 0
        if name == "runware":  # the taskUUID the vendor got was chosen and saved first
            assert seen[0]["client_ids"] == [rig.emu.submitted_bodies[0]["taskUUID"]]
        intent = record(rig, request, "intent")
        assert intent["state"] == "accepted" and intent["job_id"]
    finally:
        rig.emu.__exit__()


LOST_ANSWERS = {"502 after acceptance": dict(status=502), "reset mid-body": dict(status=RESET),
                "timeout after acceptance": dict(status=200, delay_s=0.5)}


@pytest.mark.parametrize("fault", list(LOST_ANSWERS))
@pytest.mark.parametrize("name", NO_LOOKUP)
def test_a_lost_answer_fails_with_instructions_and_only_a_forced_rerun_pays_again(name, fault, tmp_path,
                                                                                   monkeypatch, sleeps):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        rig.emu.fail("submit", **LOST_ANSWERS[fault], after_work=True)
        budget = SpendBudget(10.0)
        with pytest.raises(UnresolvedSubmission) as err:
            generate(rig.provider(timeout_s=0.25), make_request(), rig.store, budget=budget)
        message = str(err.value)
        assert "force_resubmit: true" in message and "dashboard" in message and "does not submit again" in message
        assert rig.emu.submissions == 1 and budget.spent_usd > 0  # it may have been billed: still reserved
        with pytest.raises(UnresolvedSubmission):  # a plain re-run (or a Dagster retry) asks, never pays
            generate(rig.provider(), make_request(), rig.store)
        assert rig.emu.submissions == 1
        gen = generate(rig.provider(), make_request(), rig.store, force_resubmit="run-2")
        assert rig.emu.submissions == 2 and gen.force_resubmit == "run-2" and gen.metadata()["force_resubmit"] == "run-2"
        superseded = record(rig, make_request(), "intent")["superseded"]
        assert superseded["intent"]["state"] == "sending"  # the lineage keeps what was paid over
        again = generate(rig.provider(), make_request(), rig.store, force_resubmit="run-2")
        assert again.reused and rig.emu.submissions == 2  # the same decision never forces twice
    finally:
        rig.emu.__exit__()


@pytest.mark.parametrize("fault", list(LOST_ANSWERS))
def test_runware_resolves_a_lost_answer_by_task_uuid(fault, tmp_path, monkeypatch, sleeps):
    rig = open_rig("runware", tmp_path, monkeypatch)
    try:
        rig.emu.fail("submit", **LOST_ANSWERS[fault], after_work=True)
        gen = generate(rig.provider(timeout_s=0.25), make_request(), rig.store, log=rig.log)
        assert rig.emu.submissions == 1 and gen.glb == rig.emu.glb
        assert any("asking runware whether task" in line for line in rig.logs)
    finally:
        rig.emu.__exit__()


def test_runware_resends_with_a_fresh_task_uuid_only_when_the_task_never_arrived(tmp_path, monkeypatch, sleeps):
    rig = open_rig("runware", tmp_path, monkeypatch)
    try:
        rig.emu.fail("submit", 503, times=2)  # documented as possibly upstream: ambiguous, looked up
        gen = generate(rig.provider(), make_request(), rig.store, log=rig.log)
        assert rig.emu.submissions == 1 and gen.glb == rig.emu.glb
        intent = record(rig, make_request(), "intent")
        assert len(intent["client_ids"]) == 3 == len(set(intent["client_ids"]))  # a fresh UUID per send
        assert intent["client_ids"][-1] == rig.emu.submitted_bodies[0]["taskUUID"] == gen.job_id
        assert gen.client_ids == tuple(intent["client_ids"])
    finally:
        rig.emu.__exit__()


class Killed(BaseException):
    """The process dies right after the request left (kill -9 between send and answer)."""


@pytest.mark.parametrize("name", BILLED)
def test_a_run_killed_mid_submit_is_resolved_never_resubmitted_blindly(name, tmp_path, monkeypatch):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        provider = rig.provider()
        real_submit = provider.submit

        def submit_then_die(*args, **kwargs):
            real_submit(*args, **kwargs)
            raise Killed()

        provider.submit = submit_then_die
        with pytest.raises(Killed):
            generate(provider, make_request(), rig.store)
        assert rig.emu.submissions == 1 and record(rig, make_request(), "job") is None
        if name == "runware":
            gen = generate(rig.provider(), make_request(), rig.store)
            assert gen.resumed and rig.emu.submissions == 1
        else:
            with pytest.raises(UnresolvedSubmission, match="the run stopped before the answer arrived"):
                generate(rig.provider(), make_request(), rig.store)
            assert rig.emu.submissions == 1
    finally:
        rig.emu.__exit__()


@pytest.mark.parametrize("name", BILLED)
def test_a_refused_submission_closes_the_intent_and_releases_the_reservation(name, tmp_path, monkeypatch, sleeps):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        rig.emu.rate_limit("submit", retry_after="0", times=3)  # a 429 storm outlasting the attempts
        budget = SpendBudget(10.0)
        with pytest.raises(RetryableProviderError) as err:
            generate(rig.provider(max_attempts=3), make_request(), rig.store, budget=budget)
        assert err.value.accepted is False and budget.spent_usd == 0.0
        assert record(rig, make_request(), "intent")["state"] == "not_accepted"
        gen = generate(rig.provider(), make_request(), rig.store, budget=budget)  # the retry just submits
        assert rig.emu.submissions == 1 and not gen.resumed and budget.spent_usd > 0
    finally:
        rig.emu.__exit__()


@pytest.mark.parametrize("name", BILLED)
def test_a_broken_result_file_is_fetched_at_most_twice(name, tmp_path, monkeypatch):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        rig.emu.download_mode = "not_glb"
        with pytest.raises(ProviderError, match="a re-run fetches it once more") as first:
            generate(rig.provider(), make_request(), rig.store)
        assert not isinstance(first.value, RetryableProviderError)
        with pytest.raises(UnresolvedSubmission, match="2. broken file.*force_resubmit"):
            generate(rig.provider(), make_request(), rig.store)
        calls = len(rig.emu.calls)
        with pytest.raises(UnresolvedSubmission, match="stops fetching"):
            generate(rig.provider(), make_request(), rig.store)
        assert len(rig.emu.calls) == calls and rig.emu.submissions == 1  # not fetched again, not paid again
        rig.emu.download_mode = "ok"
        gen = generate(rig.provider(), make_request(), rig.store, force_resubmit="run-9")
        assert rig.emu.submissions == 2 and gen.glb == rig.emu.glb
    finally:
        rig.emu.__exit__()


@pytest.mark.parametrize("name", list(VENDORS))
def test_a_vendor_restart_that_forgets_jobs_mid_poll_is_waited_out(name, tmp_path, monkeypatch):
    rig = open_rig(name, tmp_path, monkeypatch)
    try:
        provider = rig.provider()
        real_poll, polls = provider.poll, []

        def poll(handle):
            polls.append(1)
            if len(polls) == 1:
                rig.emu.forget(polls=3)  # the vendor restarts after the first poll
            return real_poll(handle)

        provider.poll = poll
        gen = generate(provider, make_request(), rig.store)
        assert gen.glb == rig.emu.glb and rig.emu.submissions == 1
    finally:
        rig.emu.__exit__()


def test_pixazo_error_is_not_charged_and_releases_the_reservation(tmp_path, monkeypatch):
    rig = open_vendor("pixazo", tmp_path, monkeypatch, system_error=True)
    try:
        budget = SpendBudget(10.0)
        rig.emu.fail_next_job("GPU node lost")
        with pytest.raises(ProviderError, match="not charged"):
            generate(rig.provider(), make_request(), rig.store, budget=budget)
        assert budget.spent_usd == 0.0
    finally:
        rig.emu.__exit__()


def test_presigned_signatures_in_vendor_errors_are_redacted(tmp_path, monkeypatch, sleeps):
    rig = open_vendor("modelslab", tmp_path, monkeypatch)
    try:
        url = f"{rig.emu.url}/_blobs/abc?X-Amz-Credential=AKIAEXAMPLE%2F2026&X-Amz-Signature=deadbeefcafe0123"
        rig.emu.fail("submit", 400, body={"status": "error", "message": f"Could not download {url}"})
        with pytest.raises(ProviderError) as err:
            generate(rig.provider(), make_request(), rig.store)
        text = str(err.value)
        assert "Could not download" in text and "deadbeefcafe0123" not in text and "AKIAEXAMPLE" not in text
        assert "X-Amz-Signature=[redacted]" in text
    finally:
        rig.emu.__exit__()


def test_redaction_touches_signature_parameters_only():
    text = "https://b/k?X-Amz-Signature=abc123&use=1&sig=zz then Signature=qq"
    assert provider_http.redact(text, []) == \
        "https://b/k?X-Amz-Signature=[redacted]&use=1&sig=[redacted] then Signature=[redacted]"
