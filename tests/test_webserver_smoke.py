"""The real webserver loads the project and shows the five assets connected in order."""

from __future__ import annotations

from tests.servers import dagster_processes, graphql

ASSET_GRAPH = """
{
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
    description
  }
}
"""


def test_webserver_serves_the_connected_asset_graph(tmp_path, kiln_env):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    with dagster_processes({"DAGSTER_HOME": str(home), "KILN_DATA_DIR": str(kiln_env)}, log_dir=tmp_path / "logs") as url:
        nodes = graphql(url, ASSET_GRAPH)["assetNodes"]
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    chain = ["concept_art", "generated_model", "lod_chain", "engine_export", "catalog"]
    assert set(chain) <= set(deps), deps
    assert deps["concept_art"] == set()
    for upstream, downstream in zip(chain, chain[1:]):
        assert upstream in deps[downstream], f"{downstream} should depend on {upstream}: {deps[downstream]}"
    assert all(n["description"] for n in nodes), "every asset has a description"


def test_make_dev_serves_the_project_and_stops_on_ctrl_c(tmp_path, kiln_env):
    """`make dev` runs webserver + daemon together; SIGINT (Ctrl-C) to its process group stops both."""
    import os
    import signal
    import subprocess
    import time

    from pathlib import Path

    import httpx

    from tests.servers import ROOT, free_port

    port = free_port()
    env = {**os.environ, "PORT": str(port), "DAGSTER_HOME": str(tmp_path / "home"), "KILN_DATA_DIR": str(kiln_env)}
    log = open(tmp_path / "dev.log", "wb")
    # Ctrl-C reaches `make dev` as it reaches a terminal's: a test run from a background job (a CI
    # script's `&`) inherits SIGINT ignored, and `dagster dev` would never see it.
    proc = subprocess.Popen(["make", "dev"], cwd=ROOT, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "make dev did not serve within 120 s"
            time.sleep(0.5)
        # the project is loaded, and the daemon runs beside the webserver
        nodes = graphql(f"http://127.0.0.1:{port}", "{ assetNodes { assetKey { path } } }")["assetNodes"]
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} >= {"concept_art", "catalog"}
        daemon = graphql(f"http://127.0.0.1:{port}",
                         "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }")
        statuses = {d["daemonType"]: d for d in daemon["instance"]["daemonHealth"]["allDaemonStatuses"]}
        assert statuses["SENSOR"]["required"]
        assert (tmp_path / "home" / "dagster.yaml").exists(), "make dev prepares DAGSTER_HOME with the project's dagster.yaml"

        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stuck = subprocess.run(["ps", "-o", "pid,stat,etime,args", "-s", str(proc.pid)], capture_output=True,
                                   text=True).stdout
            raise AssertionError(f"make dev still running 60 s after Ctrl-C:\n{stuck}\n"
                                 + (tmp_path / "dev.log").read_text()[-4000:]) from None
        time.sleep(1)
        leftovers = subprocess.run(["pgrep", "-f", f"-p {port}"], capture_output=True, text=True).stdout.split()
        assert not leftovers, f"processes left running after Ctrl-C: {leftovers}"
        home = str(tmp_path / "home")

        def environ(pid: str) -> str:
            try:
                return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            except OSError:  # exited meanwhile
                return ""

        orphans = [pid for pid in subprocess.run(["pgrep", "-f", "dagster"], capture_output=True, text=True).stdout.split()
                   if home in environ(pid)]
        assert not orphans, f"dagster processes of this instance left running after Ctrl-C: {orphans}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
            raise AssertionError("the webserver still answers after Ctrl-C")
        except httpx.HTTPError:
            pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
