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
    """A generation failed; the message is safe to show (never contains secrets)."""

    retryable: bool = False


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
    state: Literal["queued", "running", "succeeded", "failed"]
    progress: float | None = None
    message: str = ""
    retry_after_s: float | None = None


class Provider(Protocol):
    name: str
    model: str

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        """The provider parameters that go into the request fingerprint (validated here)."""

    def cost_usd(self, params: dict[str, Any]) -> float: ...

    def submit(self, request: GenerationRequest, request_hash: str) -> JobHandle: ...

    def poll(self, handle: JobHandle) -> JobStatus: ...

    def fetch(self, handle: JobHandle) -> bytes: ...
