"""The one small protocol every image-to-3D provider implements.

    submit(request) -> JobHandle      start a generation (the only call that may cost money)
    poll(handle)    -> JobStatus      where the job is
    fetch(handle)   -> bytes          the finished GLB

Offline providers (`local`, `import`) do their work in `submit` and return a finished handle.
`pipeline.providers.runner.generate` wraps this protocol with what every provider needs:
idempotency records in the blob store, result reuse, polling with a deadline, cost accounting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol


class ProviderError(RuntimeError):
    """A generation failed; the message is safe to show (never contains secrets).

    `accepted` answers "did the vendor take the paid request?" for errors raised by `submit`:
    False when it provably did not (refused with a 4xx, never reached, 429), None when nobody can
    tell (a timeout after the body was sent, a 5xx behind a gateway, a garbled answer). The runner
    only forgets a write-ahead intent on False; everything else is resolved with the vendor.
    """

    retryable: bool = False
    accepted: bool | None = None

    def __init__(self, message: str = "", *, accepted: bool | None = None):
        super().__init__(message)
        if accepted is not None:
            self.accepted = accepted


class RetryableProviderError(ProviderError):
    retryable = True


@dataclass(frozen=True)
class ImageInput:
    """One concept view as the provider receives it."""

    name: str  # file name in the concept folder
    data: bytes
    sha256: str
    mime_type: str
    has_alpha: bool
    url: str | None = None  # presigned URL when the blob store is S3


@dataclass(frozen=True)
class GenerationRequest:
    asset_id: str
    images: tuple[ImageInput, ...]
    prompt: str | None = None
    category: str = "prop"
    height_m: float | None = None
    seed: int | None = None
    view_angles: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific, from asset.toml / run config
    # asset.toml [reconstruct]: the offline generator's shape choices (its params carry them into the hash)
    reconstruct: dict[str, Any] = field(default_factory=dict)
    model_glb: bytes | None = None  # the folder's own model.glb (provider `import`)

    def fingerprint(self, provider: str, params: dict[str, Any]) -> str:
        """Hash of everything that determines the output: same hash, same (paid-for) result."""
        payload = {
            "provider": provider,
            "images": [i.sha256 for i in self.images],
            "model_glb": hashlib.sha256(self.model_glb).hexdigest() if self.model_glb else None,
            "prompt": self.prompt,
            "category": self.category,
            "height_m": self.height_m,
            "seed": self.seed,
            "view_angles": list(self.view_angles),
            "params": params,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class JobHandle:
    provider: str
    job_id: str
    request_hash: str
    submitted_at: float
    data: dict[str, Any] = field(default_factory=dict)  # whatever poll/fetch need (polling URL, task uuid)
    result_glb: bytes | None = None  # offline providers finish inside submit

    def to_json(self) -> bytes:
        d = asdict(self)
        d.pop("result_glb")
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "JobHandle":
        return cls(**json.loads(raw))


@dataclass
class JobStatus:
    # "missing": the vendor does not know the job right now (restarted, not yet registered, expired).
    # It is never read as "failed": the job was paid for, so the runner keeps asking for a while.
    state: Literal["queued", "running", "succeeded", "failed", "missing"]
    progress: float | None = None
    message: str = ""
    retry_after_s: float | None = None
    charged_usd: float | None = None  # what the vendor says it charged, where it says so
    refunded: bool = False  # the vendor says it did not keep the money (goneural `refunded`, Pixazo ERROR)


class Provider(Protocol):
    """Every member the runner uses. Offline providers set `paid = False`, `can_lookup = False`."""

    name: str
    model: str
    paid: bool  # a submission may cost money: write-ahead intents, no automatic resubmission
    can_lookup: bool  # the vendor can be asked about a submission by the id Kiln chose before sending
    lookup_window_s: float  # how long the vendor remembers a task (a "not found" after that proves nothing)
    settle_s: float  # how long after sending a "not found" starts to mean "never arrived"
    poll_interval_s: float
    deadline_s: float
    max_glb_bytes: int
    missing_grace_s: float  # how long a job may be unknown to the vendor before the run gives up on it

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        """The provider parameters that go into the request fingerprint (validated here)."""

    def cost_usd(self, params: dict[str, Any]) -> float: ...

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        """Tier and seed as the vendor names them, for the generation's metadata."""

    def require_credentials(self) -> None:
        """Raise before any request when a key is missing."""

    def needs_image_urls(self, request: GenerationRequest) -> bool:
        """True when the views must be reachable by URL (presigned GET URLs from the blob store)."""

    def new_client_id(self) -> str | None:
        """A fresh id for the next submission, chosen here so it is in the intent before sending."""

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        ...

    def lookup(self, client_id: str, request_hash: str) -> JobHandle | None:
        """The job the vendor holds under `client_id`, None when it provably has none (can_lookup only)."""

    def poll(self, handle: JobHandle) -> JobStatus: ...

    def fetch(self, handle: JobHandle) -> bytes: ...

    def close(self) -> None: ...


class OfflineProviderBase:
    """The protocol members an offline provider (no network, no money) shares."""

    paid = False
    can_lookup = False
    lookup_window_s = 0.0
    settle_s = 0.0
    poll_interval_s = 0.05
    deadline_s = 3600.0
    max_glb_bytes = 512 * 1024 * 1024
    missing_grace_s = 0.0

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tier": params.get("tier"), "seed": params.get("seed")}

    def require_credentials(self) -> None:
        return None

    def needs_image_urls(self, request: GenerationRequest) -> bool:
        return False

    def new_client_id(self) -> str | None:
        return None

    def lookup(self, client_id: str, request_hash: str) -> JobHandle | None:
        raise ProviderError(f"{getattr(self, 'name', 'provider')}: nothing to look up offline")

    def close(self) -> None:
        return None
