"""Runs a provider through the protocol with the safety every paid generation needs.

The request fingerprint (inputs + validated parameters) names two records in the blob store:

- `generations/<hash>/job.json`: written right after submit, before any polling. A retried step or a
  re-run with the same inputs finds it and resumes polling that job instead of paying again. When
  the vendor reports the job FAILED the record is marked failed, so a later re-run submits anew.
- `generations/<hash>/result.json`: the finished GLB's blob hash and metadata. A finished result is
  reused without calling the API at all (metadata says `reused`, cost 0).

Money: `SpendBudget` refuses a submission that would take a run past `max_spend_usd`; resumed and
reused jobs cost the run nothing. Downloads are checked (GLB magic, declared vs actual length,
chunk layout, size limit) before anything is stored, so a truncated or non-GLB file never becomes a
blob. Keys never appear here: messages name providers, job ids and hashes only.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..geometry.glb import GlbError, parse_container
from ..storage import BlobStore, StorageError
from .base import GenerationRequest, JobHandle, Provider, ProviderError, RetryableProviderError
from .http import DEFAULT_DEADLINE_S, DEFAULT_MAX_GLB_BYTES, DEFAULT_POLL_INTERVAL_S


@dataclass
class Generation:
    glb_sha256: str
    glb: bytes
    provider: str
    model: str
    job_id: str
    request_hash: str
    params: dict[str, Any]
    cost_usd: float
    reused: bool
    timings: dict[str, float] = field(default_factory=dict)
    tier: str | None = None
    seed: int | None = None
    queue_s: float | None = None  # submit -> the vendor starts working (None if never observed)
    processing_s: float | None = None  # vendor starts working -> result ready
    resumed: bool = False  # this run finished a job submitted (and paid for) by an earlier attempt

    @property
    def bytes(self) -> int:
        return len(self.glb)

    def metadata(self) -> dict[str, Any]:
        """What the Dagster layer reports for the generation (no secrets, JSON-safe)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "tier": self.tier,
            "seed": self.seed,
            "job_id": self.job_id,
            "queue_s": self.queue_s,
            "processing_s": self.processing_s,
            "bytes": self.bytes,
            "cost_usd": self.cost_usd,
            "reused": self.reused,
            "resumed": self.resumed,
            "request_hash": self.request_hash,
            "glb_sha256": self.glb_sha256,
        }


# ----------------------------------------------------------------------------------------------
# Budget


class BudgetExceeded(ProviderError):
    """A submission would take the run past its max_spend_usd; nothing was sent."""


_ledger_locks: dict[str, threading.Lock] = {}
_ledger_locks_guard = threading.Lock()


class SpendBudget:
    """A per-run spending cap: `reserve` before each paid submission, refuse once it would overflow.

    With `store` and `run_id` the ledger is the record `budgets/<run_id>.json` in the blob store, so
    every step of one Dagster run shares it whichever process runs the step, and a retried step sees
    what the run already spent; without them it is an in-process object. The Dagster layer makes one
    per run: `SpendBudget(max_spend_usd, store=store, run_id=context.run_id)` in each step.
    Steps of one run that execute at the same time in different processes read-modify-write the
    ledger and could overshoot by one generation; Kiln's in-process executor runs steps serially.
    Charges are keyed by request hash, so reserving the same generation twice counts once.
    """

    def __init__(self, max_usd: float | None, *, store: BlobStore | None = None, run_id: str | None = None):
        if max_usd is not None and max_usd < 0:
            raise ProviderError(f"max_spend_usd={max_usd} must be zero or more")
        self.max_usd = max_usd
        self.store = store if run_id else None
        self.record = f"budgets/{run_id}.json" if run_id else None
        self._charges: dict[str, dict[str, Any]] = {}
        key = f"{getattr(store, 'uri', '')}::{self.record}" if self.record else f"mem::{id(self)}"
        with _ledger_locks_guard:
            self._lock = _ledger_locks.setdefault(key, threading.Lock())

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.store is None or self.record is None:
            return self._charges
        raw = self.store.get_record(self.record)
        return dict(json.loads(raw)["charges"]) if raw else {}

    def _save(self, charges: dict[str, dict[str, Any]]) -> None:
        self._charges = charges
        if self.store is not None and self.record is not None:
            self.store.put_record(self.record, json.dumps(
                {"max_spend_usd": self.max_usd, "charges": charges}, sort_keys=True, indent=1).encode())

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return round(sum(c["usd"] for c in self._load().values()), 4)

    def reserve(self, provider: str, request_hash: str, usd: float, asset_id: str = "") -> None:
        with self._lock:
            charges = self._load()
            if request_hash in charges:
                return
            spent = sum(c["usd"] for c in charges.values())
            if self.max_usd is not None and usd > 0 and spent + usd > self.max_usd + 1e-9:
                raise BudgetExceeded(
                    f"run budget reached: max_spend_usd=${self.max_usd:.2f}, already spent ${spent:.2f} on "
                    f"{len(charges)} generation(s) in this run; {provider} for asset {asset_id!r} would cost "
                    f"${usd:.2f}. Nothing was submitted. Raise max_spend_usd in the run config or "
                    "materialize fewer assets per run."
                )
            charges[request_hash] = {"provider": provider, "asset_id": asset_id, "usd": round(usd, 4),
                                     "at": round(time.time(), 3)}
            self._save(charges)

    def release(self, request_hash: str) -> None:
        """Undo a reservation whose submission surely did not reach the vendor."""
        with self._lock:
            charges = self._load()
            if charges.pop(request_hash, None) is not None:
                self._save(charges)


# ----------------------------------------------------------------------------------------------
# Checks


def check_glb(data: bytes, *, source: str, max_bytes: int = DEFAULT_MAX_GLB_BYTES) -> None:
    """Refuse anything that is not a complete GLB before it is stored."""
    if len(data) > max_bytes:
        raise ProviderError(f"{source}: the result is {len(data)} bytes, over the {max_bytes}-byte limit")
    if data[:4] != b"glTF":
        head = data[:16]
        raise ProviderError(f"{source}: the result is not a GLB (starts with {head!r}); nothing was stored")
    try:
        parse_container(data)
    except GlbError as exc:
        raise ProviderError(f"{source}: the result is not a complete GLB ({exc}); nothing was stored") from None


def attach_image_urls(request: GenerationRequest, store: BlobStore, *, expires_s: int = 3600) -> GenerationRequest:
    """Give every view a presigned GET URL from the blob store (S3 only), uploading the view if needed.

    A local store cannot hand out URLs: its `presigned_url` raises a StorageError whose message says
    how to configure S3; it is re-raised as a ProviderError before any request is sent.
    """
    images = []
    for img in request.images:
        if img.url:
            images.append(img)
            continue
        try:
            if not store.exists(img.sha256):
                store.put(img.data, img.mime_type)
            images.append(replace(img, url=store.presigned_url(img.sha256, expires_s=expires_s)))
        except StorageError as exc:
            raise ProviderError(f"this provider takes only image URLs: {exc}") from None
    return replace(request, images=tuple(images))


# ----------------------------------------------------------------------------------------------
# The run


def _summary(provider: Provider, params: dict[str, Any]) -> dict[str, Any]:
    fn = getattr(provider, "summary", None)
    if callable(fn):
        return fn(params)
    return {"tier": params.get("tier"), "seed": params.get("seed")}


def _read_job(raw: bytes) -> tuple[JobHandle | None, dict[str, Any]]:
    info = json.loads(raw)
    if info.get("state") == "failed":
        return None, info
    if "handle" not in info:  # a bare handle (format before the failure marker existed)
        return JobHandle.from_json(raw), {"state": "submitted"}
    return JobHandle(**info["handle"]), info


def generate(
    provider: Provider,
    request: GenerationRequest,
    store: BlobStore,
    *,
    log: Callable[[str], None] = lambda _msg: None,
    budget: SpendBudget | None = None,
    poll_interval_s: float | None = None,
    deadline_s: float | None = None,
    max_glb_bytes: int | None = None,
) -> Generation:
    """Generate (or resume, or reuse) the GLB for `request`; see the module docstring for the rules.

    Poll interval, deadline and size limit default to the provider's own settings (its `options`),
    else 5 s, 1 h and 512 MiB. `Generation.cost_usd` is what the job cost when it was submitted
    (also when this call only resumed it; `resumed` says so) and 0 for a reused result; only new
    submissions are charged to `budget`.
    """
    try:
        return _generate(provider, request, store, log=log, budget=budget, poll_interval_s=poll_interval_s,
                         deadline_s=deadline_s, max_glb_bytes=max_glb_bytes)
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()  # HTTP connections; a provider reopens them if used again


def _generate(provider: Provider, request: GenerationRequest, store: BlobStore, *, log: Callable[[str], None],
              budget: SpendBudget | None, poll_interval_s: float | None, deadline_s: float | None,
              max_glb_bytes: int | None) -> Generation:
    name = provider.name
    params = provider.params(request)  # validates; raises before any request
    request_hash = request.fingerprint(name, params)
    result_record = f"generations/{request_hash}/result.json"
    job_record = f"generations/{request_hash}/job.json"
    summary = _summary(provider, params)
    poll_s = poll_interval_s or getattr(provider, "poll_interval_s", None) or DEFAULT_POLL_INTERVAL_S
    deadline = deadline_s or getattr(provider, "deadline_s", None) or DEFAULT_DEADLINE_S
    limit = max_glb_bytes or getattr(provider, "max_glb_bytes", None) or DEFAULT_MAX_GLB_BYTES

    done = store.get_record(result_record)
    if done:
        info = json.loads(done)
        log(f"{name}: reusing finished generation {info['job_id']} for asset {request.asset_id!r} "
            "(same inputs and parameters; no API call, no cost)")
        return Generation(info["glb_sha256"], store.get(info["glb_sha256"]), name, info["model"], info["job_id"],
                          request_hash, params, 0.0, True, {}, tier=info.get("tier"), seed=info.get("seed"),
                          queue_s=info.get("queue_s"), processing_s=info.get("processing_s"))

    started = time.monotonic()
    raw = store.get_record(job_record)
    handle, info = _read_job(raw) if raw else (None, {})
    resumed = handle is not None
    if handle is not None:
        cost = float(info.get("cost_usd", 0.0))
        check = getattr(provider, "require_credentials", None)
        if callable(check):
            check()
        log(f"{name}: resuming job {handle.job_id} for asset {request.asset_id!r}, submitted earlier with the "
            "same inputs (not submitting or paying again)")
    else:
        if info.get("state") == "failed":
            log(f"{name}: the previous job {info.get('job_id')} for these inputs failed; submitting a new one")
        check = getattr(provider, "require_credentials", None)
        if callable(check):
            check()
        if getattr(provider, "needs_image_urls", False) and request.images:
            request = attach_image_urls(request, store)
        cost = float(provider.cost_usd(params))
        if budget is not None:
            budget.reserve(name, request_hash, cost, request.asset_id)
        try:
            handle = provider.submit(request, request_hash)
        except BaseException as exc:
            if budget is not None and not getattr(exc, "maybe_submitted", False):
                budget.release(request_hash)
            raise
        store.put_record(job_record, json.dumps(
            {"state": "submitted", "handle": json.loads(handle.to_json()), "cost_usd": cost,
             "asset_id": request.asset_id}, sort_keys=True).encode())
        log(f"{name}: submitted job {handle.job_id} for asset {request.asset_id!r} (${cost:.2f})")

    queue_s = processing_s = None
    if handle.result_glb is not None:
        glb = handle.result_glb
    else:
        running_at: float | None = None
        last_state = ""
        while True:
            try:
                status = provider.poll(handle)
            except RetryableProviderError as exc:
                # The vendor's bad day: keep the job, keep polling until the deadline.
                if time.monotonic() - started > deadline:
                    raise
                log(f"{name}: polling job {handle.job_id} failed ({exc}); trying again")
                time.sleep(poll_s)
                continue
            now = time.time()
            if status.state != last_state:
                last_state = status.state
                log(f"{name}: job {handle.job_id}: {status.state}"
                    + (f" ({status.progress:.0%})" if status.progress is not None else ""))
            if status.state == "running" and running_at is None:
                running_at = now
            if status.state == "succeeded":
                if running_at is not None:
                    queue_s = round(max(0.0, running_at - handle.submitted_at), 3)
                    processing_s = round(max(0.0, now - running_at), 3)
                break
            if status.state == "failed":
                store.put_record(job_record, json.dumps(
                    {"state": "failed", "job_id": handle.job_id, "message": status.message,
                     "asset_id": request.asset_id}, sort_keys=True).encode())
                raise ProviderError(f"{name} job {handle.job_id} for asset {request.asset_id!r} failed: "
                                    f"{status.message or 'the vendor gave no reason'}")
            if time.monotonic() - started > deadline:
                raise RetryableProviderError(
                    f"{name} job {handle.job_id} for asset {request.asset_id!r} did not finish within "
                    f"{deadline:.0f} s (it is recorded; a retry or re-run resumes it without paying again)"
                )
            time.sleep(status.retry_after_s or poll_s)
        glb = provider.fetch(handle)
    check_glb(glb, source=f"{name} job {handle.job_id}", max_bytes=limit)
    finished = time.monotonic()

    sha = store.put(glb, "model/gltf-binary")
    store.put_record(result_record, json.dumps({
        "glb_sha256": sha, "job_id": handle.job_id, "model": provider.model, "params": params,
        "tier": summary.get("tier"), "seed": summary.get("seed"), "bytes": len(glb), "cost_usd": cost,
        "queue_s": queue_s, "processing_s": processing_s, "asset_id": request.asset_id,
    }, sort_keys=True, default=str).encode())
    timings = {"total_s": round(finished - started, 3),
               "since_submit_s": round(max(0.0, time.time() - handle.submitted_at), 3)}
    log(f"{name}: job {handle.job_id} finished; stored {len(glb)} bytes as {sha[:12]}")
    return Generation(sha, glb, name, provider.model, handle.job_id, request_hash, params, cost, False, timings,
                      tier=summary.get("tier"), seed=summary.get("seed"), queue_s=queue_s,
                      processing_s=processing_s, resumed=resumed)


__all__ = ["BudgetExceeded", "Generation", "SpendBudget", "attach_image_urls", "check_glb", "generate"]
