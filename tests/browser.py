"""Headless Chromium (Debian package `chromium`) for tests: screenshots, DOM dumps, page results.

- `screenshot(url, path, size)` and `dump_dom(url)` run one short-lived browser each.
- `PageServer(root)` serves a folder on loopback (plus `/node_modules/` from the repository, for
  three.js) and receives what a page POSTs to `/result`; `run_page(server, path)` opens the page
  and returns that JSON, so a page reports its own findings (triangle counts, a canvas PNG).

WebGL runs on SwiftShader (software), so no GPU is needed. Every browser gets a throwaway profile
and is stopped by its process group id.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed: `apt-get install -y chromium` (make test installs it)")


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kiln-chromium-") as profile:
        proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        finally:
            _stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser's own group (renderer, GPU process)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def screenshot(url: str, path: Path, size: tuple[int, int] = (1280, 900), wait_ms: int = 3000,
               timeout_s: float = 60) -> Path:
    """A PNG of the page after `wait_ms` of (virtual) time."""
    result = _run([f"--screenshot={path}", f"--window-size={size[0]},{size[1]}",
                   f"--virtual-time-budget={wait_ms}", url], timeout_s)
    if not Path(path).exists():
        raise AssertionError(f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr.decode()[-2000:]}")
    return Path(path)


def dump_dom(url: str, wait_ms: int = 3000, timeout_s: float = 60) -> str:
    """The serialized DOM after the page's scripts ran for `wait_ms` of (virtual) time."""
    result = _run(["--dump-dom", f"--virtual-time-budget={wait_ms}", url], timeout_s)
    dom = result.stdout.decode("utf-8", "replace")
    if "<html" not in dom.lower():
        raise AssertionError(f"chromium dumped no DOM (exit {result.returncode}): {result.stderr.decode()[-2000:]}")
    return dom


def image_spread(png: bytes) -> tuple[float, float]:
    """(share of pixels that differ from the corner colour, luminance standard deviation): both
    near zero for a blank image."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32)
    background = pixels[0, 0]
    differs = np.abs(pixels - background).max(axis=2) > 8
    return float(differs.mean()), float(pixels.mean(axis=2).std())


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, server_ref: "PageServer", **kwargs):
        self.page_server = server_ref
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith("/node_modules/"):
            return str(ROOT / path.lstrip("/").split("?", 1)[0])
        return super().translate_path(path)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/result":
            self.page_server.results.append(json.loads(body))
            self.page_server.received.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass

    def guess_type(self, path):
        if str(path).endswith((".js", ".mjs")):
            return "text/javascript"
        if str(path).endswith(".glb"):
            return "model/gltf-binary"
        return super().guess_type(path)


class PageServer:
    """Serves `root` on 127.0.0.1 (a free port) in a thread; collects POSTs to /result."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.results: list[dict] = []
        self.received = threading.Event()
        handler = partial(_Handler, directory=str(self.root), server_ref=self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_page(server: PageServer, path: str, timeout_s: float = 90, size: tuple[int, int] = (640, 480)) -> dict:
    """Open `path` on `server` and return the first JSON the page POSTs to /result."""
    server.received.clear()
    server.results.clear()
    with tempfile.TemporaryDirectory(prefix="kiln-chromium-") as profile, tempfile.TemporaryFile() as log:
        # A log file, not a pipe: a long-running browser would block on a full pipe.
        proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
             "--remote-debugging-port=0", f"{server.url}/{path.lstrip('/')}"],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            if not server.received.wait(timeout_s):
                _stop(proc)
                log.seek(0)
                err = log.read().decode("utf-8", "replace")[-3000:]
                raise AssertionError(f"the page {path} reported nothing within {timeout_s:.0f} s; chromium said:\n{err}")
        finally:
            _stop(proc)
    return server.results[0]


def data_url_png(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise AssertionError(f"not a PNG data URL: {data_url[:40]!r}")
    return base64.b64decode(data_url[len(prefix):])


def three_page(canvas: tuple[int, int], script: str, imports: str = "") -> str:
    """A page with one canvas, three.js + GLTFLoader + MeshoptDecoder from the repository's
    node_modules, `report(result)` (POSTs JSON to /result) and `script` run in a try block that
    reports any error instead."""
    return f"""<!doctype html>
<html><body style="margin:0">
<canvas id="view" width="{canvas[0]}" height="{canvas[1]}"></canvas>
<script type="importmap">
{{"imports": {{"three": "/node_modules/three/build/three.module.js",
             "three/addons/": "/node_modules/three/examples/jsm/"}}}}
</script>
<script type="module">
import * as THREE from 'three';
import {{ GLTFLoader }} from 'three/addons/loaders/GLTFLoader.js';
import {{ MeshoptDecoder }} from 'three/addons/libs/meshopt_decoder.module.js';
{imports}
const report = (result) => fetch('/result', {{ method: 'POST', body: JSON.stringify(result) }});
try {{
{script}
}} catch (error) {{
  report({{ error: String((error && error.stack) || error) }});
}}
</script>
</body></html>
"""
