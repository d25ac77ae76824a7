"""A loopback HTTP server and the shared machinery of the vendor emulators.

Each emulator serves its vendor's documented endpoints over real HTTP on 127.0.0.1 (a free port,
a background thread), checks the credentials, walks jobs through the documented states one state
per poll (so a job finishes in a few milliseconds when the client polls fast), serves the result
GLB from its own `/files/` path, and takes faults on demand through plain Python methods:

    emu.fail("submit", 503, times=2)            # the next two submissions answer 503
    emu.rate_limit("poll", retry_after="7")     # one 429 with Retry-After: 7
    emu.fail_next_job("out of GPU memory")      # the next job ends in the vendor's failed state
    emu.download_mode = "truncated"             # drop the connection half way through the GLB
    emu.expire_downloads = 1                    # the next download URL hit answers 403 (expired)
    emu.fail("submit", 502, after_work=True)    # accept the job, then answer 502 (a gateway's lost answer)
    emu.fail("submit", RESET, after_work=True)  # accept the job, then cut the answer mid-body
    emu.forget()                                # a restart: in-flight jobs unknown to polls for a while
    emu.job_seconds = (1.0, 3.0)                # vendor latency: each job runs a uniform draw of seconds
                                                # (seeded by `latency_seed`) before any poll sees it done

`submissions` counts accepted paid submissions; `calls` lists every (method, path) seen; each job
records when it was accepted (`created`) and, with a latency set, when its work is done (`ready_at`,
time.monotonic()): the vendor's own record of how many jobs it ran at once.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from .glbs import sample_glb

FILE_ROUTES = ("file", "blob")
RESET = 0  # a Fault status: send the real answer's headers and half its body, then drop the connection
RESTART = -1  # a Fault status: the vendor restarts now and forgets its in-flight jobs for a few polls
SLOW = -2  # a Fault status: the real answer, its body dribbled out over `delay_s` seconds


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any  # email.message.Message: case-insensitive
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
        """multipart/form-data -> (fields, files{name: (filename, data, content type)})."""
        raw = b"Content-Type: " + self.headers.get("Content-Type", "").encode() + b"\r\n\r\n" + self.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, bytes, str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files[name] = (filename, payload, part.get_content_type())
            else:
                fields[name] = payload.decode()
        return fields, files


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None  # send only this many body bytes, then drop the connection
    delay_s: float = 0.0  # answer this late (after the work is done), to provoke client timeouts
    slow_s: float = 0.0  # spread the body over this many seconds (a slow CDN)


def json_reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, dict(parse_qsl(parts.query)), self.headers, body)
        try:
            reply = self.server.app(request)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - an emulator bug shows up as a 599 the test can see
            reply = json_reply({"emulator_error": repr(exc)}, 599)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            headers = {"Content-Length": str(len(reply.body)), **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            if reply.truncate_to is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            body = reply.body if reply.truncate_to is None else reply.body[: reply.truncate_to]
            if reply.slow_s and body:
                step = max(1, len(body) // 8)
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(reply.slow_s / 8)
            else:
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if reply.truncate_to is not None:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client gave up: not our problem
        pass


class LoopbackServer:
    def __init__(self, app: Callable[[Request], Reply]):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.app = app  # type: ignore[attr-defined]
        # A short poll interval makes shutdown() (which waits for the loop to notice) near-instant.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Fault:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    after_work: bool = False  # do the real work (accept the job), then answer with this fault, `delay_s` late
    kind: str = ""  # the campaign's name for it, counted in `injected` when the fault is served

    def reply(self) -> Reply:
        if isinstance(self.body, (bytes, str)):
            body = self.body.encode() if isinstance(self.body, str) else self.body
            return Reply(self.status, body, dict(self.headers), delay_s=self.delay_s)
        body = self.body if self.body is not None else {"error": f"emulated HTTP {self.status}"}
        reply = json_reply(body, self.status, self.headers)
        reply.delay_s = self.delay_s
        return reply


@dataclass
class Job:
    id: str
    fail_message: str | None = None
    polls: int = 0
    body: Any = None
    stuck: bool = False  # never finishes (a crashed self-hosted worker)
    created: float = field(default_factory=time.monotonic)
    ready_at: float | None = None  # with a latency set: polls before this moment see it still running


class Emulator:
    """Base of the vendor emulators: routing, auth hook, faults, job states, result files."""

    name = ""
    steps: tuple[str, ...] = ("queued", "running")  # states before "done"; one per poll

    def __init__(self, *, glb: bytes | None = None, blob_source: Any = None, **credentials: str):
        self.glb = glb if glb is not None else sample_glb()
        self.blob_source = blob_source  # a BlobStore whose blobs the emulator serves as "presigned" URLs
        self.credentials = credentials
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str]] = []
        self.submissions = 0
        self.submitted_bodies: list[Any] = []
        self.jobs: dict[str, Job] = {}
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.job_failures: list[str] = []
        self.stuck_jobs = 0
        self.download_mode = "ok"  # ok | truncated | short | not_glb
        self.expire_downloads = 0
        self.last_credential = ""
        self.on_new_job: Callable[[Job], None] | None = None
        self.on_route: dict[str, Callable[[], None]] = {}  # one-shot: called once the route did its work
        self.injected: Counter[str] = Counter()  # faults served, by kind
        self.charge_usd = 0.0  # what the emulated account pays per accepted job
        self.charged: dict[str, float] = {}  # job id -> USD
        self.forgotten: dict[str, int] = {}  # job id -> polls still answered "not found" (a restart)
        self.slow_body_s = 0.0  # stream result files this slowly (seconds spread over the body)
        self.job_seconds: tuple[float, float] | None = None  # emulated vendor time per job (min, max)
        self.latency_seed = 0
        self._latency_rng: random.Random | None = None
        self._server = LoopbackServer(self.handle)
        routes = [*self.routes(),
                  ("GET", r"/files/(?P<token>[^/]+)", "file", lambda req, token: self._file(token)),
                  ("GET", r"/_blobs/(?P<sha>[0-9a-f]{64})", "blob", lambda req, sha: self._blob(sha))]
        self._routes = [(m, re.compile(p), r, fn) for m, p, r, fn in routes]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Emulator":
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """What the client's `base_url` is set to (the vendor's URL layout on this server)."""
        return self.url

    # -- control API -------------------------------------------------------------------------

    def fail(self, route: str, status: int, *, body: Any = None, headers: dict[str, str] | None = None,
             times: int = 1, delay_s: float = 0.0, after_work: bool = False, kind: str = "") -> None:
        with self.lock:
            self.faults[route].extend(Fault(status, body, dict(headers or {}), delay_s, after_work, kind)
                                      for _ in range(times))

    def rate_limit(self, route: str, retry_after: str = "2", times: int = 1) -> None:
        self.fail(route, 429, body=self.rate_limit_body(), headers={"Retry-After": retry_after}, times=times)

    def out_of_balance(self, route: str = "submit") -> None:
        self.fail(route, 402, body=self.balance_body())

    def fail_next_job(self, message: str = "the model could not reconstruct this object") -> None:
        """The next job ends in the vendor's failed state; `{credential}` in the message echoes the key."""
        with self.lock:
            self.job_failures.append(message)

    def forget(self, polls: int = 2) -> None:
        """A restart that loses the in-flight jobs from memory: their next `polls` polls say not found."""
        with self.lock:
            for job_id, job in self.jobs.items():
                if not self.finished(job):
                    self.forgotten[job_id] = polls

    def finished(self, job: Job) -> bool:
        return job.polls >= len(self.steps)

    def known(self, job_id: str) -> "Job | None":
        """The job a poll may see: None while a restart has it forgotten (and for unknown ids)."""
        with self.lock:
            left = self.forgotten.get(job_id, 0)
            if left:
                self.forgotten[job_id] = left - 1
                return None
            return self.jobs.get(job_id)

    def api_calls(self) -> list[tuple[str, str]]:
        with self.lock:
            return [c for c in self.calls if not c[1].startswith(("/files/", "/_blobs/"))]

    # -- what subclasses provide -------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, str | Callable[[Request], str], Callable[..., Reply]]]:
        raise NotImplementedError

    def authorized(self, req: Request) -> bool:
        return True

    def unauthorized(self, req: Request) -> Reply:
        return json_reply({"error": "Unauthorized", "message": f"invalid credentials {self.last_credential}"}, 401)

    def rate_limit_body(self) -> Any:
        return {"error": "Too Many Requests", "message": "rate limit exceeded"}

    def balance_body(self) -> Any:
        return {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        with self.lock:
            self.calls.append((req.method, req.path))
        for method, pattern, route, fn in self._routes:
            match = pattern.fullmatch(req.path)
            if method != req.method or not match:
                continue
            name = route(req) if callable(route) else route
            with self.lock:
                queue = self.faults.get(name)
                fault = queue.pop(0) if queue else None
                if fault is not None:
                    self.injected[fault.kind or f"HTTP {fault.status}"] += 1
                hook = self.on_route.pop(name, None)
            if fault is not None and fault.status == RESTART:
                self.forget()
                fault = None
            if fault is not None and not fault.after_work and fault.status != SLOW:
                return fault.reply()
            if name not in FILE_ROUTES and not self.authorized(req):
                return self.unauthorized(req)
            reply = fn(req, **match.groupdict())
            if hook is not None:
                hook()  # e.g. kill -9 the client after the vendor took the job, before it hears back
            if fault is not None:
                if fault.status == SLOW:
                    reply.slow_s = fault.delay_s
                    return reply
                if fault.status == RESET:
                    reply.truncate_to = max(1, len(reply.body) // 2)
                elif fault.status >= 400:
                    reply = fault.reply()
                reply.delay_s = fault.delay_s
            return reply
        return json_reply({"error": "Not Found", "message": f"no route {req.method} {req.path}"}, 404)

    def new_job(self, job_id: str | None = None, body: Any = None) -> Job:
        with self.lock:
            message = self.job_failures.pop(0) if self.job_failures else None
            job = Job(job_id or uuid.uuid4().hex, message, body=body)
            if self.stuck_jobs:
                self.stuck_jobs -= 1
                job.stuck = True
            if job.fail_message:
                job.fail_message = job.fail_message.replace("{credential}", self.last_credential)
            if self.job_seconds is not None:
                if self._latency_rng is None:
                    self._latency_rng = random.Random(self.latency_seed)
                job.ready_at = job.created + self._latency_rng.uniform(*self.job_seconds)
            if self.on_new_job is not None:
                self.on_new_job(job)  # tests look at the client's state at the moment the vendor takes a job
            self.jobs[job.id] = job
            self.charged[job.id] = self.charge_usd
            self.submissions += 1
            self.submitted_bodies.append(body)
            return job

    def advance(self, job: Job) -> str:
        """The job's state at this poll: each listed step once, then "done" or "failed"."""
        with self.lock:
            if job.stuck:
                return self.steps[-1]
            if job.ready_at is not None:
                if time.monotonic() < job.ready_at:  # still working: walk the states, stop at the last
                    state = self.steps[min(job.polls, len(self.steps) - 1)]
                    job.polls = min(job.polls + 1, len(self.steps) - 1)
                    return state
                job.polls = max(job.polls, len(self.steps))
            state = self.steps[job.polls] if job.polls < len(self.steps) else (
                "failed" if job.fail_message else "done")
            job.polls += 1
            return state

    def file_url(self) -> str:
        return f"{self.url}/files/{uuid.uuid4().hex}.glb"

    def payload(self) -> bytes:
        """The result bytes as the current download mode shapes them."""
        if self.download_mode in ("short", "truncated"):  # (a GLB embedded in JSON can only be short)
            return self.glb[: len(self.glb) // 2]
        if self.download_mode == "not_glb":
            return b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return self.glb

    def _file(self, token: str) -> Reply:
        with self.lock:
            if self.expire_downloads:
                self.expire_downloads -= 1
                return Reply(403, b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                             b"<Message>Request has expired</Message></Error>", {"Content-Type": "application/xml"})
        if self.download_mode == "truncated":
            return Reply(200, self.glb, {"Content-Type": "model/gltf-binary"}, truncate_to=len(self.glb) // 2)
        if self.download_mode == "not_glb":
            return Reply(200, self.payload(), {"Content-Type": "text/html"})
        return Reply(200, self.payload(), {"Content-Type": "model/gltf-binary"}, slow_s=self.slow_body_s)

    def _blob(self, sha: str) -> Reply:
        if self.blob_source is None or not self.blob_source.exists(sha):
            return Reply(404, b"NoSuchKey")
        return Reply(200, self.blob_source.get(sha), {"Content-Type": "image/png"})

    @staticmethod
    def fetch_image(url: str) -> bytes | None:
        """What a vendor does with an image URL: GET it (None if it cannot)."""
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
                data = response.read()
        except Exception:  # noqa: BLE001
            return None
        return data if is_image(data) else None


def is_image(data: bytes) -> bool:
    png, jpeg = data[:8] == b"\x89PNG\r\n\x1a\n", data[:3] == b"\xff\xd8\xff"
    return png or jpeg or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
