"""Pixazo gateway emulator: Hyper3D Rodin v1 request + the universal status endpoint.

Everything from seeds/003: `Ocp-Apim-Subscription-Key` header; `prompt` required; image URLs the
gateway downloads; 202 with `request_id`, `QUEUED` and a `polling_url`; `GET /v2/requests/status/{id}`
walks QUEUED -> PROCESSING -> COMPLETED (`output.media_url[]`) or FAILED/ERROR with `error`; the
documented error bodies (402 "Insufficient Balance", 400 "Model not found", ...).
"""

from __future__ import annotations

import uuid
from typing import Any

from .server import Emulator, Reply, Request, json_reply

MODEL = "hyper3d-rodin-259"
ENUMS = {"condition_mode": ("concat",), "material": ("Shaded", "Wireframe", "Flat"),
         "quality": ("low", "medium", "high", "ultra"), "tier": ("Regular", "Premium")}  # seeds/003


class PixazoEmulator(Emulator):
    name = "pixazo"
    steps = ("QUEUED", "PROCESSING")

    def __init__(self, *, api_key: str, polling_host: str | None = None, system_error: bool = False,
                 **kwargs: Any):
        super().__init__(api_key=api_key, **kwargs)
        self.polling_host = polling_host  # answer polling URLs on another host (the client must not follow)
        self.system_error = system_error  # failed jobs end in ERROR (not charged) instead of FAILED

    @property
    def base_url(self) -> str:
        return f"{self.url}/{MODEL}/v1"

    def routes(self):
        return [("POST", rf"/{MODEL}/v1/hyper3d-rodin-request", "submit", self._submit),
                ("GET", r"/v2/requests/status/(?P<request_id>[^/]+)", "poll", self._status)]

    def authorized(self, req: Request) -> bool:
        key = req.headers.get("Ocp-Apim-Subscription-Key", "")
        self.last_credential = key
        return key == self.credentials["api_key"]

    def unauthorized(self, req: Request) -> Reply:
        message = ("Access denied due to invalid subscription key. Make sure to provide a valid key "
                   f"({self.last_credential}) for an active subscription.")
        return json_reply({"statusCode": 401, "message": message}, 401)

    def _submit(self, req: Request) -> Reply:
        body = req.json() or {}
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return json_reply({"error": "Bad Request", "message": "prompt is required"}, 400)
        urls = body.get("input_image_urls") or []
        if isinstance(urls, str):
            urls = [urls]
        for url in urls:
            if self.fetch_image(url) is None:
                return json_reply({"error": "Bad Request", "message": "input image could not be downloaded"}, 400)
        if body.get("geometry_file_format", "glb") not in ("glb", "gltf", "obj"):
            return json_reply({"error": "Bad Request", "message": "unsupported geometry_file_format"}, 400)
        for key, allowed in ENUMS.items():
            if key in body and body[key] not in allowed:
                return json_reply({"error": "Bad Request", "message": f"{key} must be one of {', '.join(allowed)}"},
                                  400)
        job = self.new_job(f"{MODEL}_{uuid.uuid4()}", body=body)
        host = self.polling_host or self.url
        return json_reply({"request_id": job.id, "status": "QUEUED",
                           "polling_url": f"{host}/v2/requests/status/{job.id}"}, 202)

    def _status(self, req: Request, request_id: str) -> Reply:
        job = self.known(request_id)
        if job is None:
            return json_reply({"error": "Not Found", "message": f"request {request_id} not found"}, 404)
        state = self.advance(job)
        out: dict[str, Any] = {"request_id": job.id, "model_id": MODEL, "error": None, "output": None,
                               "created_at": "2026-03-31T10:00:00.000Z", "updated_at": "2026-03-31T10:00:15.000Z",
                               "completed_at": None}
        if state == "done":
            out.update(status="COMPLETED", completed_at="2026-03-31T10:00:15.000Z",
                       output={"media_url": [self.file_url()], "media_type": "application/octet-stream"})
        elif state == "failed":
            out.update(status="ERROR" if self.system_error else "FAILED", error=job.fail_message)
        else:
            out.update(status=state)
        return json_reply(out)
