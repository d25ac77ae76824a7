"""`import`: the concept folder's own `model.glb` goes into the chain instead of a generation.

This is how a studio backfills a catalog of models it already has.
"""

from __future__ import annotations

import time
from typing import Any

from ..geometry.glb import GlbError, read_glb
from .base import GenerationRequest, JobHandle, JobStatus, OfflineProviderBase, ProviderError


class ImportProvider(OfflineProviderBase):
    name = "import"
    model = "model.glb"

    def __init__(self, *, base_url: str | None = None, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        if not request.model_glb:
            raise ProviderError(
                f"asset {request.asset_id}: provider `import` needs a model.glb in the concept folder"
            )
        unknown = sorted({**self.options, **request.options})
        if unknown:  # nothing to tune in an import: a key here is a mistake the artist should hear about
            raise ProviderError(f"import: takes no options, got {', '.join(unknown)} "
                                "(remove them, or choose the provider they belong to)")
        return {}

    def cost_usd(self, params: dict[str, Any]) -> float:
        return 0.0

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        data = request.model_glb
        try:
            # Refuse a broken import here, with the reader's reason (skinned models pass: the
            # asset.toml `[import] skinned` policy is applied where the model is normalized).
            read_glb(data, allow_animation=True)
        except GlbError as exc:
            raise ProviderError(f"asset {request.asset_id}: file model.glb: {exc}") from None
        return JobHandle(self.name, f"import-{request_hash[:12]}", request_hash, time.time(), result_glb=data)

    def poll(self, handle: JobHandle) -> JobStatus:
        return JobStatus("succeeded", 1.0)

    def fetch(self, handle: JobHandle) -> bytes:
        raise ProviderError("imports finish inside submit; there is nothing to fetch")
