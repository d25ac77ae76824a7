"""Pixazo gateway: Hyper3D Rodin v1 (`hyper3d-rodin-259`).

Everything here is from Pixazo's "Hyper3D Rodin v1 ... API Documentation" (pixazo.ai, the
Hyper3D API page of the gateway):
- `POST https://gateway.pixazo.ai/hyper3d-rodin-259/v1/hyper3d-rodin-request` with the key in the
  `Ocp-Apim-Subscription-Key` header; `prompt` is required; `input_image_urls` takes image URLs
  (so Kiln passes presigned S3 GET URLs); `condition_mode` "concat", `geometry_file_format`
  glb/gltf/obj, `material` Shaded/Wireframe/Flat, `quality` low/medium/high/ultra, `tier`
  Regular/Premium.
- The answer is 202 with `request_id`, `status: QUEUED` and a `polling_url`
  (`https://gateway.pixazo.ai/v2/requests/status/{request_id}`), which Kiln follows.
- Status: QUEUED -> PROCESSING -> COMPLETED (`output.media_url[]`), or FAILED (see `error`), or
  ERROR ("System error — not charged").
- Errors: 400 bad request / model not found, 401, 402 insufficient balance (never retried),
  403, 429, 500.
- $0.40 per generation; ERROR is "System error — not charged", so it releases the reservation.
- `output.media_url[]` may list several files (a preview next to the model): Kiln takes the one
  whose path ends in `.glb`, else the only one, and refuses to guess among several.
- The gateway names the request itself and offers no look-up by a client-chosen id, so an
  unanswered submission is left to the artist (see the runner).

The key is only sent to the gateway's own origin: a `polling_url` on another host is not followed
(the status URL is rebuilt on the gateway instead), and result files are fetched without it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import ProviderHttpError, RemoteProvider, check_choice, same_origin

DEFAULTS: dict[str, Any] = {
    "condition_mode": "concat",
    "material": "Shaded",
    "quality": "medium",
    "tier": "Regular",
}
MAX_PROMPT_CHARS = 2000


def build_prompt(request: GenerationRequest) -> str:
    """The prompt Pixazo requires: the asset's own, else one made from its id and category."""
    if request.prompt and request.prompt.strip():
        return request.prompt.strip()
    subject = request.asset_id.replace("_", " ").replace("-", " ").strip()
    return (f"{subject}, a {request.category} game asset, single object, clean readable shapes, "
            "modeled to match the reference image")


class PixazoProvider(RemoteProvider):
    name = "pixazo"
    model = "hyper3d-rodin-259"
    default_base_url = "https://gateway.pixazo.ai/hyper3d-rodin-259/v1"
    key_vars = ("PIXAZO_API_KEY",)
    image_urls_only = True
    generation_options = frozenset(DEFAULTS) | {"geometry_file_format"}

    def auth_headers(self, creds: dict[str, str]) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": creds["PIXAZO_API_KEY"], "Cache-Control": "no-cache"}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=5, text_ok=True)
        if opts.get("geometry_file_format", "glb") != "glb":
            raise ProviderError(f"{self.name}: geometry_file_format={opts['geometry_file_format']!r}; Kiln needs 'glb'")
        p = dict(DEFAULTS)
        p.update({k: v for k, v in opts.items() if k in DEFAULTS})
        check_choice("condition_mode", self.name, p["condition_mode"], ("concat",))
        check_choice("material", self.name, p["material"], ("Shaded", "Wireframe", "Flat"))
        check_choice("quality", self.name, p["quality"], ("low", "medium", "high", "ultra"))
        check_choice("tier", self.name, p["tier"], ("Regular", "Premium"))
        prompt = build_prompt(request)
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ProviderError(f"{self.name}: the prompt of asset {request.asset_id!r} is {len(prompt)} "
                                f"characters; keep it under {MAX_PROMPT_CHARS}")
        p["prompt"] = prompt
        return p

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tier": params.get("tier"), "seed": None}  # the gateway documents no seed

    def _origin(self) -> str:
        url = httpx.URL(self.base_url)
        return f"{url.scheme}://{url.netloc.decode()}"

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        params = self.params(request)
        body: dict[str, Any] = {**params, "geometry_file_format": "glb"}
        if request.images:
            body["input_image_urls"] = self.image_urls(request)  # first view first
        response = self.http.request("POST", "/hyper3d-rodin-request", json=body,
                                     what="submit the Rodin request", idempotent=False)
        answer = self.http.json(response, "submit") or {}
        request_id = answer.get("request_id")
        if not request_id:
            raise ProviderError(f"{self.name}: the submit answer has no request_id")
        polling_url = answer.get("polling_url") or ""
        if not polling_url or not same_origin(polling_url, self._origin()):
            # Never send the key to another host: poll the documented status path on the gateway.
            polling_url = f"{self._origin()}/v2/requests/status/{request_id}"
        return JobHandle(self.name, request_id, request_hash, time.time(), {"polling_url": polling_url})

    def _status(self, handle: JobHandle) -> dict[str, Any]:
        url = handle.data.get("polling_url") or f"{self._origin()}/v2/requests/status/{handle.job_id}"
        response = self.http.request("GET", url, what=f"poll request {handle.job_id}")
        answer = self.http.json(response, f"poll request {handle.job_id}")
        return answer if isinstance(answer, dict) else {}

    def poll(self, handle: JobHandle) -> JobStatus:
        try:
            answer = self._status(handle)
        except ProviderHttpError as exc:
            if exc.status == 404:
                return JobStatus("missing", message=str(exc))
            raise
        status = str(answer.get("status") or "").upper()
        if status == "COMPLETED":
            urls = list((answer.get("output") or {}).get("media_url") or [])
            if not urls:
                return JobStatus("failed", message="COMPLETED without output.media_url")
            handle.data["media_url"] = urls
            return JobStatus("succeeded", progress=1.0)
        if status == "FAILED":
            return JobStatus("failed", message=self.http.redact(f"FAILED: {answer.get('error') or 'no reason given'}"))
        if status == "ERROR":
            return JobStatus("failed", refunded=True, charged_usd=0.0, message=self.http.redact(
                f"ERROR (a gateway system error; Pixazo does not charge for it): {answer.get('error') or 'no detail'}"))
        if status == "PROCESSING":
            return JobStatus("running")
        return JobStatus("queued")

    def fetch(self, handle: JobHandle) -> bytes:
        return self.download_result(handle, "media_url", pick=lambda urls: pick_glb(self.name, handle.job_id, urls))


def pick_glb(provider: str, job_id: str, urls: list[str]) -> str:
    """The model among the result files: the `.glb`, else the only file; never a guess among several."""
    glbs = [u for u in urls if str(u).split("?", 1)[0].lower().endswith(".glb")]
    if len(glbs) == 1 or (glbs and len(set(glbs)) == 1):
        return glbs[0]
    if len(urls) == 1:
        return urls[0]
    paths = ", ".join(str(u).split("?", 1)[0].rsplit("/", 1)[-1] for u in urls)
    raise ProviderError(f"{provider}: request {job_id} returned {len(urls)} files ({paths}) and "
                        f"{'several' if glbs else 'none'} of them end in .glb; Kiln will not guess which is the model")
