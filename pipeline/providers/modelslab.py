"""ModelsLab: `image_to_3d` (TRELLIS-style) through `POST /api/v6/3d/image_to_3d`.

Contract (ModelsLab's "Generate 3D model from image", docs.modelslab.com): the API key goes in
the JSON body as `key`; `image` is an image URL (so Kiln passes presigned S3 GET URLs); documented
ranges: `ss_sampling_steps` and `slat_sampling_steps` 1..50, `slat_guidance_strength` 0..10,
`mesh_simplify` 0.9..0.98, `resolution` <= 512, `chunk_size` <= 12000; `seed` 0 picks a random seed;
`output_format` glb; a success answer lists the files in `output[]`.

Filled in from ModelsLab's "Fetch 3D" page (docs.modelslab.com/3d-api/fetch): a request that is not
finished at once answers `status: "processing"` with its `id` (and an `eta` in seconds and a
`fetch_result` URL); `POST /api/v6/3d/fetch/{id}` with `{"key": ...}` returns the same
processing answer or the success answer. Failures answer `status: "error"` (or `"failed"`) with a
`message`, often with HTTP 200. The files in `output[]` can appear a little after the status says
success (the answer's `future_links`), so a 404 on download is retried like a 5xx.

The documented `image` is a single URL and how `multi_image` would take several is not documented,
so a folder with several views is refused (one clear line) instead of silently sending only the
first; `multi_image` stays false. A fetch answering "Request not found" is reported as missing
(never failed: the request was paid for). ModelsLab names the request itself and offers no look-up
by a client-chosen id (`track_id` only labels webhooks), so an unanswered submission is left to the
artist (see the runner).
"""

from __future__ import annotations

import time
from typing import Any

from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import RETRY_STATUSES, RemoteProvider, check_bool, check_choice, check_int, check_number, message_from_json

DEFAULTS: dict[str, Any] = {
    "render": False,
    "resolution": 256,
    "multi_image": False,
    "ss_guidance_strength": 7.5,
    "ss_sampling_steps": 12,
    "slat_guidance_strength": 3,
    "slat_sampling_steps": 12,
    "mesh_simplify": 0.9,
    "chunk_size": 8192,
    "seed": 0,
    "temp": "no",
}


class ModelsLabProvider(RemoteProvider):
    name = "modelslab"
    model = "image_to_3d"
    default_base_url = "https://modelslab.com/api/v6"
    key_vars = ("MODELSLAB_API_KEY",)
    image_urls_only = True
    generation_options = frozenset(DEFAULTS) | {"output_format"}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        self.check_views(request, max_views=1)
        if opts.get("output_format", "glb") != "glb":
            raise ProviderError(f"{self.name}: output_format={opts['output_format']!r}; Kiln needs 'glb'")
        p = dict(DEFAULTS)
        p.update({k: v for k, v in opts.items() if k in DEFAULTS})
        if request.seed is not None:
            p["seed"] = request.seed
        n = self.name
        check_int("ss_sampling_steps", n, p["ss_sampling_steps"], 1, 50)
        check_int("slat_sampling_steps", n, p["slat_sampling_steps"], 1, 50)
        check_number("slat_guidance_strength", n, p["slat_guidance_strength"], 0, 10)
        # The page gives no range for ss_guidance_strength (default 7.5); the "guidance 0-10"
        # applies to both guidance strengths.
        check_number("ss_guidance_strength", n, p["ss_guidance_strength"], 0, 10)
        check_number("mesh_simplify", n, p["mesh_simplify"], 0.9, 0.98)
        check_int("resolution", n, p["resolution"], 1, 512)
        check_int("chunk_size", n, p["chunk_size"], 1, 12000)
        check_int("seed", n, p["seed"], 0)
        check_bool("render", n, p["render"])
        if check_bool("multi_image", n, p["multi_image"]):
            raise ProviderError(f"{n}: multi_image=true is not supported: ModelsLab does not document how several "
                                "images are sent")
        check_choice("temp", n, p["temp"], ("yes", "no"))
        return p

    def _key(self) -> str:
        return self.credentials()["MODELSLAB_API_KEY"]

    def _answer(self, response, what: str) -> dict[str, Any]:
        body = self.http.json(response, what)
        if not isinstance(body, dict):
            raise ProviderError(f"{self.name}: {what}: unexpected answer shape")
        return body

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        params = self.params(request)
        urls = self.image_urls(request)
        body = {"key": self._key(), "image": urls[0], "output_format": "glb", **params,
                "webhook": None, "track_id": None}
        response = self.http.request("POST", "/3d/image_to_3d", json=body, what="submit image_to_3d",
                                     idempotent=False, ok=_answers_json_error)
        answer = self._answer(response, "submit")
        status = answer.get("status")
        if status in ("error", "failed") or response.status_code >= 400:
            raise ProviderError(self.http.redact(
                f"{self.name}: image_to_3d was refused: {message_from_json(answer) or status}"
                + (f" (check {self.key_vars[0]})" if "key" in str(answer).lower() else "")), accepted=False)
        job_id = answer.get("id")
        if job_id is None:
            raise ProviderError(f"{self.name}: the image_to_3d answer has no id")
        data: dict[str, Any] = {"eta": answer.get("eta")}
        if status == "success":
            data["output"] = list(answer.get("output") or [])
        return JobHandle(self.name, str(job_id), request_hash, time.time(), data)

    def poll(self, handle: JobHandle) -> JobStatus:
        if handle.data.get("output"):
            return JobStatus("succeeded", progress=1.0)
        response = self.http.request("POST", f"/3d/fetch/{handle.job_id}", json={"key": self._key()},
                                     what=f"fetch request {handle.job_id}", ok=_answers_json_error)
        answer = self._answer(response, f"fetch request {handle.job_id}")
        status = answer.get("status")
        if status == "success":
            output = list(answer.get("output") or [])
            if not output:
                return JobStatus("failed", message="success without output files")
            handle.data["output"] = output
            return JobStatus("succeeded", progress=1.0)
        message = message_from_json(answer) or str(status)
        if status in ("error", "failed") and "not found" in message.lower():
            return JobStatus("missing", message=self.http.redact(message))
        if status in ("error", "failed") or response.status_code >= 400:
            return JobStatus("failed", message=self.http.redact(message))
        return JobStatus("running")

    def fetch(self, handle: JobHandle) -> bytes:
        # Output files can lag the success status (the answer's future_links): a 404 is retried too.
        return self.download_result(handle, "output", pick=_glb_url, retry_statuses=RETRY_STATUSES | {404})


def _glb_url(urls: list[str]) -> str:
    return next((u for u in urls if str(u).split("?", 1)[0].lower().endswith(".glb")), urls[0])


def _answers_json_error(response) -> bool:
    """ModelsLab reports refusals as JSON `status: error`; keep those for the caller to word."""
    if response.status_code >= 500 or response.status_code in (402, 429):
        return False
    try:
        return response.json().get("status") in ("error", "failed")
    except Exception:  # noqa: BLE001
        return False
