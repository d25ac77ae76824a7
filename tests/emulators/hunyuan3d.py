"""Emulator of the self-hosted Hunyuan3D-2 `api_server.py` (github.com/Tencent/Hunyuan3D-2).

`POST /send` answers `{"uid"}` at once; `GET /status/{uid}` answers `processing` until done, then
`completed` with `model_base64`; an unknown uid, like a crashed generation, stays `processing`
(the upstream server keeps no failed state); `POST /generate` answers the GLB itself, or HTTP 404
with `{"text": ..., "error_code": 1}`. No authentication.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from .server import Emulator, Reply, Request, is_image, json_reply

SERVER_ERROR_MSG = "**NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.**"


class Hunyuan3DEmulator(Emulator):
    name = "hunyuan3d"
    steps = ("processing", "processing")

    def routes(self):
        return [("POST", r"/send", "submit", self._send),
                ("GET", r"/status/(?P<uid>[^/]+)", "poll", self._status),
                ("POST", r"/generate", "generate", self._generate)]

    def _valid(self, body: dict[str, Any]) -> bool:
        try:
            return is_image(base64.b64decode(body.get("image") or "", validate=True))
        except ValueError:
            return False

    @staticmethod
    def _record(body: dict[str, Any]) -> dict[str, Any]:
        """What tests inspect: the params, and the decoded image's hash instead of its base64."""
        image = base64.b64decode(body["image"])
        return {**{k: v for k, v in body.items() if k != "image"}, "image_sha256": hashlib.sha256(image).hexdigest()}

    def _send(self, req: Request) -> Reply:
        body = req.json() or {}
        uid = str(uuid.uuid4())
        if self._valid(body):
            self.new_job(uid, body=self._record(body))
        # Upstream starts a thread and answers the uid either way; a bad image just never finishes.
        return json_reply({"uid": uid})

    def _status(self, req: Request, uid: str) -> Reply:
        job = self.known(uid)
        if job is None or job.fail_message or self.advance(job) != "done":
            return json_reply({"status": "processing"})
        return json_reply({"status": "completed", "model_base64": base64.b64encode(self.payload()).decode()})

    def _generate(self, req: Request) -> Reply:
        body = req.json() or {}
        if not self._valid(body):
            return json_reply({"text": SERVER_ERROR_MSG, "error_code": 1}, 404)
        job = self.new_job(str(uuid.uuid4()), body=self._record(body))
        if job.fail_message:
            return json_reply({"text": SERVER_ERROR_MSG, "error_code": 1}, 404)
        return Reply(200, self.payload(), {"Content-Type": "model/gltf-binary"})
