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
