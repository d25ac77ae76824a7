"""Runs a provider through the protocol with the safety every paid generation needs.

The request fingerprint (inputs + validated parameters) names three records in the blob store:

- `generations/<hash>/intent.json`: the write-ahead record, durable *before* a paid request leaves
  the machine: sequence number, the client-side ids Kiln chose (Runware's taskUUID, fresh per
  submission), the time. A run that finds an intent with no confirmed job does not submit again:
  it asks the vendor by the saved id where the API allows a look-up (Runware `getResponse`); where it
  does not, the asset fails with what to check and the run-config flag `force_resubmit` that pays
  again on purpose (recorded in the intent and the lineage).
- `generations/<hash>/job.json`: the confirmed job, written right after the vendor's answer. A retried
  step or a re-run finds it and resumes polling instead of paying again. A job the vendor reports
  failed is marked so (a re-run submits anew, and an uncharged one releases its reservation); a job
  whose file is broken twice is marked `bad_result`, so re-runs stop fetching the same bad file.
- `generations/<hash>/result.json`: the finished GLB's blob hash and metadata. A finished result is
  reused without calling the API at all (metadata says `reused`, cost 0).

Only failures that prove the vendor did not take the job (`ProviderError.accepted is False`: no
connection, 429, a 4xx refusal) release the reservation and forget the intent; every other failure
of a submission is ambiguous and goes through the intent.

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
from ..storage import sha256_bytes
from .base import GenerationRequest, JobHandle, JobStatus, Provider, ProviderError, RetryableProviderError
from .http import DEFAULT_MAX_GLB_BYTES


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
    cost_source: str = "estimate"  # "vendor" when the vendor reported what it charged
    force_resubmit: str | None = None  # the run that deliberately paid again over an earlier submission
    client_ids: tuple[str, ...] = ()  # the ids Kiln chose for its submissions (Runware taskUUIDs)

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
            "cost_source": self.cost_source,
            "force_resubmit": self.force_resubmit,
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
        self.run_id = run_id
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
        """Undo a reservation whose submission surely did not reach the vendor, or was not charged."""
        with self._lock:
            charges = self._load()
            if charges.pop(request_hash, None) is not None:
                self._save(charges)

    def settle(self, request_hash: str, usd: float) -> None:
        """Replace this run's estimate with what the vendor says it charged (no-op if not reserved here)."""
        with self._lock:
            charges = self._load()
            if request_hash in charges:
                charges[request_hash] = {**charges[request_hash], "usd": round(usd, 4), "source": "vendor"}
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

MAX_BAD_FETCHES = 2  # a second broken file for the same job is the vendor's result, not a network glitch
MAX_SUBMISSIONS_PER_CALL = 3  # look-up says "never arrived" -> send again with a fresh id, at most this often


class UnresolvedSubmission(ProviderError):
    """A paid job may exist (or existed and is unusable) and Kiln cannot settle it alone: a person decides.

    Never retried automatically; the message says what to check and how to pay again on purpose
    (`force_resubmit` in the generated_model run config).
    """

    retryable = False


FORCE_HINT = ("re-run generated_model for this asset with `force_resubmit: true` in the run config "
              "(launchpad) to submit and pay again on purpose; it is recorded in the lineage")


class _Records:
    """The three records of one request fingerprint (see the module docstring)."""

    def __init__(self, store: BlobStore, request_hash: str):
        self.store, self.request_hash = store, request_hash

    def get(self, kind: str) -> dict[str, Any] | None:
        raw = self.store.get_record(f"generations/{self.request_hash}/{kind}.json")
        return json.loads(raw) if raw else None

    def put(self, kind: str, info: dict[str, Any]) -> None:
        self.store.put_record(f"generations/{self.request_hash}/{kind}.json",
                              json.dumps(info, sort_keys=True, default=str).encode())


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _current_job(job: dict[str, Any] | None, intent: dict[str, Any] | None) -> dict[str, Any] | None:
    """The confirmed job of the latest submission (a job of an older, superseded submission is not)."""
    if job is None:
        return None
    if "handle" not in job and job.get("state") != "failed":  # a bare handle (the very first format)
        job = {"state": "submitted", "handle": job}
    if intent is not None and job.get("seq", 0) != intent.get("seq", 0):
        return None
    return job


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
    force_resubmit: str | None = None,
    vendor_done: Callable[[], None] = lambda: None,
) -> Generation:
    """Generate (or resume, or reuse) the GLB for `request`; see the module docstring for the rules.

    Poll interval, deadline and size limit default to the provider's own settings. `Generation.cost_usd`
    is what the job cost (the vendor's figure where it reports one, else the estimate; also when this
    call only resumed it) and 0 for a reused result; only new submissions are charged to `budget`.
    `force_resubmit` is a token naming the decision to pay again (the Dagster run id): it supersedes an
    unresolved intent, a failed, lost or broken job once; the same token never forces twice, so a
    retried step resumes what the forced submission started. `vendor_done` is called once the vendor
    has finished the job, before its file is fetched and stored: the job no longer counts against the
    vendor's concurrency (the caller frees its pool slot there).
    """
    try:
        return _Run(provider, request, store, log, budget, force_resubmit, vendor_done).run(
            poll_interval_s or provider.poll_interval_s, deadline_s or provider.deadline_s,
            max_glb_bytes or provider.max_glb_bytes or DEFAULT_MAX_GLB_BYTES)
    finally:
        provider.close()  # HTTP connections; a provider reopens them if used again


class _Run:
    def __init__(self, provider: Provider, request: GenerationRequest, store: BlobStore,
                 log: Callable[[str], None], budget: SpendBudget | None, force_token: str | None,
                 vendor_done: Callable[[], None]):
        self.provider, self.request, self.store, self.log, self.budget = provider, request, store, log, budget
        self.vendor_done = vendor_done
        self.name = provider.name
        self.params = provider.params(request)  # validates; raises before any request, upload or reservation
        self.request_hash = request.fingerprint(self.name, self.params)
        self.records = _Records(store, self.request_hash)
        self.force_token = force_token
        self.forced: str | None = None
        self.cost = 0.0
        self.cost_source = "estimate"
        self.intent: dict[str, Any] | None = None
        self.job: dict[str, Any] | None = None

    @property
    def asset(self) -> str:
        return f"asset {self.request.asset_id!r}"

    # -- the whole story ---------------------------------------------------------------------

    def run(self, poll_s: float, deadline: float, limit: int) -> Generation:
        name, summary = self.name, self.provider.summary(self.params)
        done = self.records.get("result")
        if done:
            self.log(f"{name}: reusing finished generation {done['job_id']} for {self.asset} "
                     "(same inputs and parameters; no API call, no cost)")
            return Generation(done["glb_sha256"], self.store.get(done["glb_sha256"]), name, done["model"],
                              done["job_id"], self.request_hash, self.params, 0.0, True, {},
                              tier=done.get("tier"), seed=done.get("seed"), queue_s=done.get("queue_s"),
                              processing_s=done.get("processing_s"), cost_source=done.get("cost_source", "estimate"),
                              force_resubmit=done.get("force_resubmit"), client_ids=tuple(done.get("client_ids", ())))

        started = time.monotonic()
        self.intent, job = self.records.get("intent"), self.records.get("job")
        self.provider.require_credentials()
        current = _current_job(job, self.intent)
        superseded = None
        if self.force_token and (job or self.intent) and (self.intent or {}).get("forced_by") != self.force_token:
            superseded = {"intent": self.intent, "job": job}
            self.forced = self.force_token
            current = None
            self.log(f"{name}: force_resubmit: superseding the earlier submission for {self.asset} "
                     f"(intent {(self.intent or {}).get('seq')}, job {(job or {}).get('state')}); paying again on purpose")
            if self.intent and self.intent.get("state") == "sending" and _current_job(job, self.intent) is None:
                # The artist checked the dashboard and found no job (the message asks for exactly that):
                # the reservation held for the unanswered submission is released; the new one is reserved.
                self._release(self.intent)
        elif (self.intent or {}).get("forced_by"):
            self.forced = self.intent["forced_by"]  # type: ignore[index]

        handle: JobHandle | None = None
        resumed = False
        if current is not None and current.get("state") == "submitted":
            handle, resumed = JobHandle(**current["handle"]), True
            self.job = current
            self.cost = float(current.get("cost_usd", 0.0))
            self.cost_source = current.get("cost_source", "estimate")
            self.log(f"{name}: resuming job {handle.job_id} for {self.asset}, submitted earlier with the same "
                     "inputs (not submitting or paying again)")
        elif current is not None and current.get("state") == "bad_result":
            raise UnresolvedSubmission(
                f"{name} job {current['handle']['job_id']} for {self.asset} served a broken result file "
                f"{current.get('bad_fetches')} times (last: {current.get('error', 'not a GLB')}); Kiln stops "
                f"fetching it. Report the job id to {name}; or {FORCE_HINT}")
        elif superseded is None and self.intent and self.intent.get("state") == "sending" and current is None:
            handle = self._settle_pending_intent()
            resumed = handle is not None
        elif current is not None and current.get("state") == "failed":
            self.log(f"{name}: the previous job {current.get('job_id')} for these inputs failed; submitting a new one")
        if handle is None:
            handle = self._submit(superseded)

        glb, queue_s, processing_s = self._wait_and_fetch(handle, started, poll_s, deadline, limit)
        finished = time.monotonic()
        sha = self.store.put(glb, "model/gltf-binary")
        client_ids = tuple((self.intent or {}).get("client_ids") or ())
        self.records.put("result", {
            "glb_sha256": sha, "job_id": handle.job_id, "model": self.provider.model, "params": self.params,
            "tier": summary.get("tier"), "seed": summary.get("seed"), "bytes": len(glb), "cost_usd": self.cost,
            "cost_source": self.cost_source, "queue_s": queue_s, "processing_s": processing_s,
            "asset_id": self.request.asset_id, "force_resubmit": self.forced, "client_ids": list(client_ids),
        })
        timings = {"total_s": round(finished - started, 3),
                   "since_submit_s": round(max(0.0, time.time() - handle.submitted_at), 3)}
        self.log(f"{name}: job {handle.job_id} finished; stored {len(glb)} bytes as {sha[:12]}")
        return Generation(sha, glb, name, self.provider.model, handle.job_id, self.request_hash, self.params,
                          self.cost, False, timings, tier=summary.get("tier"), seed=summary.get("seed"),
                          queue_s=queue_s, processing_s=processing_s, resumed=resumed,
                          cost_source=self.cost_source, force_resubmit=self.forced, client_ids=client_ids)

    # -- submission --------------------------------------------------------------------------

    def _settle_pending_intent(self) -> JobHandle | None:
        """An earlier attempt wrote an intent and never heard back: find its job, or prove there is none."""
        intent, name = self.intent or {}, self.name
        if not self.provider.paid:
            self.log(f"{name}: an earlier submission for {self.asset} got no answer; this server does not "
                     "charge, so it is sent again")
            return None
        if not self.provider.can_lookup:
            raise UnresolvedSubmission(self._unresolved_message(intent, intent.get("error") or
                                                                "the run stopped before the answer arrived"))
        found = self._look_up(intent)
        if found is not None:
            self._confirm(found, intent)
            self.log(f"{name}: the earlier submission for {self.asset} reached {name} as {found.job_id}; "
                     "resuming it (not paying again)")
        else:
            self._release(intent)  # it provably never arrived: nothing was charged for it
        return found

    def _look_up(self, intent: dict[str, Any]) -> JobHandle | None:
        """Ask the vendor by every id this request was sent under; None only when it provably has none."""
        provider, name = self.provider, self.name
        wait = float(intent.get("sent_at", 0)) + provider.settle_s - time.time()
        if wait > 0:
            time.sleep(wait)  # a request lost in transit may still be entering the vendor's queue
        ids = [c for c in intent.get("client_ids") or [] if c]
        for client_id in reversed(ids):
            try:
                found = provider.lookup(client_id, self.request_hash)
            except ProviderError as exc:
                # Asking costs nothing: retrying the step asks again and never submits blindly.
                raise RetryableProviderError(f"{name}: could not ask whether {self.asset}'s earlier submission "
                                             f"{client_id} arrived: {exc}") from None
            if found is not None:
                return found
        if not ids or time.time() - float(intent.get("sent_at", 0)) > provider.lookup_window_s:
            raise UnresolvedSubmission(self._unresolved_message(
                intent, f"{name} no longer answers for ids sent that long ago" if ids else "no id to ask by"))
        return None

    def _unresolved_message(self, intent: dict[str, Any], reason: str) -> str:
        name = self.name
        ids = ", ".join(intent.get("client_ids") or []) or "none (the vendor names jobs itself)"
        return (f"{name}: {self.asset}: a paid request was sent at {_iso(float(intent.get('sent_at', 0)))} "
                f"(request {self.request_hash[:12]}, client id {ids}) and no usable answer came back ({reason}); "
                f"Kiln cannot tell whether {name} accepted and billed it"
                + ("" if self.provider.can_lookup else f", and {name}'s API offers no way to ask") +
                f". Check the {name} dashboard for a job created around that time: if there is one, wait for "
                "it and put its GLB in the concept folder as model.glb (provider `import`); if there is none, "
                f"{FORCE_HINT}. Kiln does not submit again on its own.")

    def _submit(self, superseded: dict[str, Any] | None) -> JobHandle:
        provider, request, name = self.provider, self.request, self.name
        if provider.needs_image_urls(request):
            request = attach_image_urls(request, self.store)
        self.cost = float(provider.cost_usd(self.params))
        if self.budget is not None:
            self.budget.reserve(name, self.request_hash, self.cost, request.asset_id)
        previous = self.intent or {}
        # Ids already tried for this same decision stay in the intent, so a look-up checks them all.
        carried = [] if superseded is not None or previous.get("state") != "sending" else list(
            previous.get("client_ids") or [])
        for attempt in range(1, MAX_SUBMISSIONS_PER_CALL + 1):
            client_id = provider.new_client_id()  # Runware: a fresh taskUUID per submission, as it asks
            intent = {"state": "sending", "seq": int(previous.get("seq", 0)) + 1, "provider": name,
                      "asset_id": request.asset_id, "request_hash": self.request_hash, "sent_at": time.time(),
                      "client_ids": carried + ([client_id] if client_id else []), "cost_usd": self.cost,
                      "forced_by": self.forced, "superseded": superseded or previous.get("superseded"),
                      "ledger_run_id": self.budget.run_id if self.budget is not None else None}
            self.records.put("intent", intent)  # write-ahead: durable before anything paid leaves
            self.intent = previous = intent
            carried = list(intent["client_ids"])
            try:
                handle = provider.submit(request, self.request_hash, client_id)
            except Exception as exc:
                if isinstance(exc, ProviderError) and exc.accepted is False:
                    self.records.put("intent", {**intent, "state": "not_accepted", "error": str(exc)[:500]})
                    self._release(intent)
                    raise
                reason = str(exc) if isinstance(exc, ProviderError) else type(exc).__name__
                self.records.put("intent", {**intent, "error": reason[:500]})
                if not provider.paid:
                    raise RetryableProviderError(f"{name}: {reason} (this server does not charge; a retry sends "
                                                 "it again)") from None
                if not provider.can_lookup:
                    raise UnresolvedSubmission(self._unresolved_message(intent, reason)) from None
                self.log(f"{name}: no usable answer to the submission for {self.asset} ({reason}); asking {name} "
                         f"whether task {client_id} arrived before doing anything else")
                found = self._look_up(intent)
                if found is None:
                    self.log(f"{name}: {name} never received task {client_id}; sending again with a fresh id "
                             f"(attempt {attempt + 1})")
                    continue
                handle = found
            self._confirm(handle, intent)
            self.log(f"{name}: submitted job {handle.job_id} for {self.asset} (${self.cost:.2f} reserved)")
            return handle
        raise UnresolvedSubmission(self._unresolved_message(
            previous, f"{MAX_SUBMISSIONS_PER_CALL} sends in a row got no answer"))

    def _confirm(self, handle: JobHandle, intent: dict[str, Any]) -> None:
        """The vendor has the job: record it (resumable from now on) and close the intent."""
        if self.intent is not intent:
            self.cost = float(intent.get("cost_usd", self.provider.cost_usd(self.params)))
        charged = handle.data.get("charged_usd")
        if isinstance(charged, (int, float)):
            self._charged(float(charged))
        self.job = {"state": "submitted", "seq": intent.get("seq", 0), "handle": json.loads(handle.to_json()),
                    "cost_usd": self.cost, "cost_source": self.cost_source, "asset_id": self.request.asset_id}
        self.records.put("job", self.job)
        self.intent = {**intent, "state": "accepted", "job_id": handle.job_id}
        self.records.put("intent", self.intent)

    def _ledger(self, intent: dict[str, Any] | None) -> SpendBudget | None:
        """The ledger of the run that reserved the submission of `intent` (this run's, or an earlier one's)."""
        ledger = (intent or {}).get("ledger_run_id")
        if self.budget is not None and (ledger is None or ledger == self.budget.run_id):
            return self.budget
        return SpendBudget(None, store=self.store, run_id=ledger) if ledger else None

    def _release(self, intent: dict[str, Any] | None) -> None:
        ledger = self._ledger(intent)
        if ledger is not None:
            ledger.release(self.request_hash)

    def _charged(self, usd: float) -> None:
        """The vendor said what it charged: the ledger of the run that reserved it follows."""
        self.cost, self.cost_source = round(usd, 4), "vendor"
        ledger = self._ledger(self.intent)
        if ledger is not None:
            ledger.settle(self.request_hash, usd)

    # -- waiting and fetching ----------------------------------------------------------------

    def _wait_and_fetch(self, handle: JobHandle, started: float, poll_s: float, deadline: float,
                        limit: int) -> tuple[bytes, float | None, float | None]:
        name, provider = self.name, self.provider
        if handle.result_glb is not None:
            check_glb(handle.result_glb, source=f"{name} job {handle.job_id}", max_bytes=limit)
            return handle.result_glb, None, None
        running_at: float | None = None
        missing_since: float | None = None
        last_state = ""
        queue_s = processing_s = None
        while True:
            try:
                status = provider.poll(handle)
            except RetryableProviderError as exc:
                # The vendor's bad day: keep the job, keep polling until the deadline.
                if time.monotonic() - started > deadline:
                    raise
                self.log(f"{name}: polling job {handle.job_id} failed ({exc}); trying again")
                time.sleep(poll_s)
                continue
            now = time.time()
            if status.state != last_state:
                last_state = status.state
                self.log(f"{name}: job {handle.job_id}: {status.state}"
                         + (f" ({status.progress:.0%})" if status.progress is not None else ""))
            if status.state == "missing":
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > provider.missing_grace_s:
                    raise UnresolvedSubmission(
                        f"{name} job {handle.job_id} for {self.asset} was accepted but {name} has not known it for "
                        f"{provider.missing_grace_s:.0f} s ({status.message or 'not found'}); it may still be "
                        f"billed. A re-run asks again; if {name}'s dashboard confirms the job is gone, {FORCE_HINT}")
                time.sleep(poll_s)
                continue
            missing_since = None
            if status.state == "running" and running_at is None:
                running_at = now
            if status.state == "succeeded":
                if status.charged_usd is not None:
                    self._charged(status.charged_usd)
                if running_at is not None:
                    queue_s = round(max(0.0, running_at - handle.submitted_at), 3)
                    processing_s = round(max(0.0, now - running_at), 3)
                break
            if status.state == "failed":
                self._failed(handle, status)
            if time.monotonic() - started > deadline:
                raise RetryableProviderError(
                    f"{name} job {handle.job_id} for {self.asset} did not finish within "
                    f"{deadline:.0f} s (it is recorded; a retry or re-run resumes it without paying again)")
            time.sleep(status.retry_after_s or poll_s)
        self.vendor_done()
        glb = provider.fetch(handle)
        try:
            check_glb(glb, source=f"{name} job {handle.job_id}", max_bytes=limit)
        except ProviderError as exc:
            self._bad_file(handle, glb, exc)
        return glb, queue_s, processing_s

    def _failed(self, handle: JobHandle, status: JobStatus) -> None:
        uncharged = status.refunded or status.charged_usd == 0
        self.records.put("job", {**(self.job or {}), "state": "failed", "job_id": handle.job_id,
                                 "message": status.message, "asset_id": self.request.asset_id,
                                 "charged": not uncharged})
        if uncharged:
            self._release(self.intent)
        elif status.charged_usd is not None:
            self._charged(status.charged_usd)
        raise ProviderError(f"{self.name} job {handle.job_id} for {self.asset} failed: "
                            f"{status.message or 'the vendor gave no reason'}"
                            + (" (not charged; the reservation is released)" if uncharged else ""))

    def _bad_file(self, handle: JobHandle, glb: bytes, exc: ProviderError) -> None:
        """A complete download that is not a usable GLB: count it, so re-runs do not fetch it forever."""
        job = self.job or {}
        bad = int(job.get("bad_fetches", 0)) + 1
        final = bad >= MAX_BAD_FETCHES
        self.job = {**job, "state": "bad_result" if final else "submitted", "bad_fetches": bad,
                    "bad_sha256": sha256_bytes(glb), "error": str(exc)[:300]}
        self.records.put("job", self.job)
        if final:
            raise UnresolvedSubmission(f"{exc}. This is the {bad}. broken file for job {handle.job_id}; Kiln stops "
                                       f"fetching it. Report the job id to {self.name}; or {FORCE_HINT}") from None
        raise ProviderError(f"{exc}. The paid job is kept: a re-run fetches it once more (no new submission); "
                            "if that file is broken too, the asset needs force_resubmit") from None


__all__ = ["BudgetExceeded", "Generation", "SpendBudget", "UnresolvedSubmission", "attach_image_urls",
           "check_glb", "generate"]
