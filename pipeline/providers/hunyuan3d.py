"""Self-hosted Hunyuan3D-2: the `api_server.py` that ships with Tencent/Hunyuan3D-2.

There is no vendor API page; the contract is the server's source
(github.com/Tencent/Hunyuan3D-2, `api_server.py`):
- `POST /send` with JSON params starts a generation in a background thread and answers `{"uid"}`;
  `GET /status/{uid}` answers `{"status": "processing"}` until the GLB exists, then
  `{"status": "completed", "model_base64": <the GLB, base64>}`. The server has no failed state:
  a crashed generation stays "processing" forever, so Kiln's per-job deadline is what ends it.
- `POST /generate` runs the generation inside the request and answers the GLB file itself, or
  HTTP 404 with `{"text": <message>, "error_code": 1}` on any error.
- Params: `image` (base64, no data-URI prefix: the server calls `base64.b64decode` on it), `seed`
  (default 1234), `octree_resolution` (128), `num_inference_steps` (5), `guidance_scale` (5.0),
  `texture` (false; needs a server started with `--enable_tex`), `face_count` (40000, used with
  texture), `type` (glb). The server's text-to-image path is commented out upstream, so
  text-only requests are refused here before any request.
- No authentication; the server listens on port 8081 by default. Set the address with the run
  config `base_url` or `KILN_HUNYUAN3D_BASE_URL`.

Mode `send` (default) polls, so a long generation survives a step retry (the uid is recorded);
mode `generate` holds one HTTP request open for the whole generation (set `timeout_s` to match).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from .base import GenerationRequest, JobHandle, JobStatus, ProviderError
from .http import DEFAULT_TIMEOUT_S, RemoteProvider, check_bool, check_choice, check_int, check_number

DEFAULTS: dict[str, Any] = {
    "seed": 1234,
    "octree_resolution": 128,
    "num_inference_steps": 5,
    "guidance_scale": 5.0,
    "texture": False,
    "face_count": 40000,
}


class Hunyuan3DProvider(RemoteProvider):
    name = "hunyuan3d"
    model = "Hunyuan3D-2 (api_server)"
    default_base_url = "http://127.0.0.1:8081"
    key_vars = ()
    paid = False  # self-hosted: a lost submission costs GPU time, not money, so it is simply sent again
    generation_options = frozenset(DEFAULTS)
    CLIENT_OPTIONS = RemoteProvider.CLIENT_OPTIONS | {"mode"}

    def __init__(self, *, base_url: str | None = None, options: dict[str, Any] | None = None):
        super().__init__(base_url=base_url, options=options)
        self.mode = check_choice("mode", self.name, self.options.get("mode", "send"), ("send", "generate"))
        if self.mode == "generate" and "timeout_s" not in self.options:
            self.options["timeout_s"] = max(DEFAULT_TIMEOUT_S, 1800.0)  # the whole generation is one request
        self._results: dict[str, bytes] = {}

    def params(self, request: GenerationRequest) -> dict[str, Any]:
        opts = self.merged_options(request)
        if not request.images:
            raise ProviderError(f"{self.name}: asset {request.asset_id!r} has no concept image; the Hunyuan3D-2 "
                                "api_server has no working text-to-3D path (its text-to-image pipeline is disabled "
                                "upstream)")
        p = dict(DEFAULTS)
        p.update(opts)
        if request.seed is not None:
            p["seed"] = request.seed
        n = self.name
        check_int("seed", n, p["seed"], 0, 2**63 - 1)
        check_int("octree_resolution", n, p["octree_resolution"], 16, 1024)
        check_int("num_inference_steps", n, p["num_inference_steps"], 1, 200)
        check_number("guidance_scale", n, p["guidance_scale"], 0)
        check_bool("texture", n, p["texture"])
        check_int("face_count", n, p["face_count"], 1)
        return p

    def summary(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"tier": f"octree {params['octree_resolution']}, {params['num_inference_steps']} steps"
                + (", textured" if params["texture"] else ""), "seed": params["seed"]}

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        # One view: the server conditions on a single image (the first view seeds the materials).
        return {**self.params(request), "image": base64.b64encode(request.images[0].data).decode(), "type": "glb"}

    def submit(self, request: GenerationRequest, request_hash: str, client_id: str | None = None) -> JobHandle:
        body = self._body(request)
        if self.mode == "generate":
            response = self.http.request("POST", "/generate", json=body, what="generate", idempotent=False,
                                         ok=lambda r: r.status_code == 404 and _is_server_error(r))
            if response.status_code == 404:
                raise ProviderError(f"{self.name}: the server failed to generate: {response.json().get('text')}",
                                    accepted=False)
            handle = JobHandle(self.name, f"generate-{request_hash[:12]}", request_hash, time.time(),
                               {"mode": "generate"})
            handle.result_glb = response.content
            return handle
        response = self.http.request("POST", "/send", json=body, what="send", idempotent=False)
        uid = (self.http.json(response, "send") or {}).get("uid")
        if not uid:
            raise ProviderError(f"{self.name}: /send answered without a uid")
        return JobHandle(self.name, str(uid), request_hash, time.time(), {"mode": "send"})

    def poll(self, handle: JobHandle) -> JobStatus:
        if handle.data.get("mode") == "generate":
            # A synchronous /generate result lives only in the answer; if the step stopped before
            # storing it there is nothing to resume on the server.
            return JobStatus("failed", message="the answer of a synchronous /generate call was lost before it "
                                               "was stored; re-run to generate again")
        response = self.http.request("GET", f"/status/{handle.job_id}", what=f"status of {handle.job_id}")
        answer = self.http.json(response, f"status of {handle.job_id}") or {}
        if answer.get("status") == "completed":
            try:
                self._results[handle.job_id] = base64.b64decode(answer.get("model_base64") or "", validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError(f"{self.name}: the status of {handle.job_id} carries a model that is not "
                                    "valid base64") from None
            return JobStatus("succeeded", progress=1.0)
        # "processing" covers queued, running and crashed alike (the server keeps no failed state).
        return JobStatus("running")

    def fetch(self, handle: JobHandle) -> bytes:
        if handle.job_id not in self._results:
            status = self.poll(handle)
            if status.state != "succeeded":
                raise ProviderError(f"{self.name}: {handle.job_id} has no result yet")
        return self._results.pop(handle.job_id)


def _is_server_error(response) -> bool:
    try:
        return response.json().get("error_code") is not None
    except Exception:  # noqa: BLE001
        return False
