"""A team deployment for real: two machines, one PostgreSQL instance database, one S3 bucket.

Each "machine" is its own DagsterInstance built from deploy/dagster.postgres.yaml in its own
DAGSTER_HOME, with its own KILN_DATA_DIR holding a copy of the same concept art. They share only
what a team shares: the PostgreSQL database (a real server, tests/pgserver.py) and the blob store
and export target on S3 (a real SeaweedFS, tests/s3server.py). Machine B must see machine A's runs
and materializations, reuse A's generation and published version, and publish the catalog.
"""

from __future__ import annotations

import json
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from pipeline.definitions import defs
from pipeline.geometry.glb import read_glb
from pipeline.storage import parse_s3_uri
from tests.test_pipeline import SMALL, draw_blob, failure_text, materialization

pytest_plugins = ["tests.s3server", "tests.pgserver"]
pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
ASSET = "crate"
CHAIN = ("concept_art", "generated_model", "lod_chain", "engine_export")


@contextmanager
def machine(home: Path):
    """A DagsterInstance as a team machine builds it: DAGSTER_HOME holding the deploy yaml."""
    home.mkdir(parents=True)
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def run_asset(instance, asset_id: str):
    return defs.resolve_job_def("kiln_asset_job").execute_in_process(
        partition_key=asset_id, instance=instance, raise_on_error=False)


def test_two_machines_share_runs_and_artifacts(postgres_server, s3_server, tmp_path, monkeypatch):
    pg = pytest.importorskip("dagster_postgres", reason="team deployments need the postgres extra: pip install -e '.[postgres]'")

    db = postgres_server.create_database("kiln_team")
    for var, value in postgres_server.env(db).items():
        monkeypatch.setenv(var, value)
    prefix = f"team-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KILN_STORE_URI", s3_server.uri(f"{prefix}/store"))
    export_uri = s3_server.uri(f"{prefix}/exports")
    monkeypatch.setenv("KILN_EXPORT_URI", export_uri)

    # Each machine has its own checkout of the same art.
    data_a, data_b = tmp_path / "machine-a", tmp_path / "machine-b"
    folder = data_a / "concepts" / ASSET
    draw_blob(folder / "front.png")
    (folder / "asset.toml").write_text('category = "small_prop"\nheight_m = 0.5\n' + SMALL)
    shutil.copytree(data_a / "concepts", data_b / "concepts")

    with machine(tmp_path / "home-a") as instance_a, machine(tmp_path / "home-b") as instance_b:
        for inst in (instance_a, instance_b):  # the deploy yaml really selects PostgreSQL
            assert isinstance(inst.run_storage, pg.PostgresRunStorage)
            assert isinstance(inst.event_log_storage, pg.PostgresEventLogStorage)

        # Machine A: register the partition and run the chain end to end.
        monkeypatch.setenv("KILN_DATA_DIR", str(data_a))
        instance_a.add_dynamic_partitions("game_assets", [ASSET])
        result_a = run_asset(instance_a, ASSET)
        assert result_a.success, failure_text(result_a)
        gen_a = materialization(instance_a, "generated_model", ASSET).metadata
        export_a = materialization(instance_a, "engine_export", ASSET).metadata
        assert gen_a["reused_previous_generation"].value is False
        assert export_a["already_published"].value is False
        version = export_a["version"].value
        concept_hash = materialization(instance_a, "concept_art", ASSET).metadata["content_hash"].value

        # Machine B sees A's partition, run and materializations through PostgreSQL alone.
        monkeypatch.setenv("KILN_DATA_DIR", str(data_b))
        assert instance_b.get_dynamic_partitions("game_assets") == [ASSET]
        run_a = instance_b.get_run_by_id(result_a.run_id)
        assert run_a is not None and run_a.status == dg.DagsterRunStatus.SUCCESS
        assert run_a.tags["dagster/partition"] == ASSET
        for key in CHAIN:
            records = instance_b.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[ASSET]), limit=5).records
            assert [r.run_id for r in records] == [result_a.run_id], key

        # Machine B re-runs the asset: the generation, LOD chain and published version come from S3.
        result_b = run_asset(instance_b, ASSET)
        assert result_b.success, failure_text(result_b)
        assert result_b.run_id != result_a.run_id
        gen_b = materialization(instance_b, "generated_model", ASSET).metadata
        lods_b = materialization(instance_b, "lod_chain", ASSET).metadata
        export_b = materialization(instance_b, "engine_export", ASSET).metadata
        assert gen_b["reused_previous_generation"].value is True
        assert gen_b["lineage"].value["glb_sha256"] == gen_a["lineage"].value["glb_sha256"]
        assert lods_b["reused_previous_chain"].value is True
        assert export_b["already_published"].value is True
        assert export_b["version"].value == version

        # ... and machine A sees B's run in turn.
        assert instance_a.get_run_by_id(result_b.run_id).status == dg.DagsterRunStatus.SUCCESS

        # Machine B publishes the catalog to S3.
        cat = defs.resolve_job_def("kiln_catalog_job").execute_in_process(instance=instance_b, raise_on_error=False)
        assert cat.success, failure_text(cat)
        assert instance_a.get_latest_materialization_event(dg.AssetKey("catalog")).run_id == cat.run_id

    client = s3_server.client()
    bucket, key_prefix = parse_s3_uri(export_uri)
    catalog = json.loads(client.get_object(Bucket=bucket, Key=f"{key_prefix}/catalog.json")["Body"].read())
    (entry,) = catalog["assets"]
    assert entry["asset_id"] == ASSET and entry["version"] == version and entry["provider"] == "local"
    assert entry["source_sha256"] == concept_hash  # lineage back to the art, whichever machine drew it
    tris = export_b["triangles_per_level"].value
    assert [lv["level"] for lv in entry["lods"]] == list(range(len(tris)))
    assert [lv["triangles"] for lv in entry["lods"]] == tris
    for lv in entry["lods"]:
        assert isinstance(lv["error_m"], float) and isinstance(lv["screen_size"], float)
        lod_bucket, lod_key = parse_s3_uri(lv["uri"])
        assert lod_bucket == bucket and lod_key.startswith(f"{key_prefix}/{ASSET}/{version}/")
        glb = client.get_object(Bucket=lod_bucket, Key=lod_key)["Body"].read()
        assert read_glb(glb).triangle_count == lv["triangles"]
    assert entry["exports"]
    for profile, info in entry["exports"].items():
        head = client.head_object(Bucket=bucket, Key=parse_s3_uri(info["uri"])[1])
        assert head["ContentLength"] == info["bytes"] > 0 and len(info["sha256"]) == 64, profile

    # The history really lives in PostgreSQL (no SQLite fallback): two asset runs and one catalog run,
    # every chain asset materialized once per machine, and the provider pool shared and released.
    sql = postgres_server.psql
    assert sql("SELECT count(*) FROM runs", db) == "3"
    assert sql(f"SELECT count(*) FROM runs WHERE run_id IN ('{result_a.run_id}', '{result_b.run_id}', "
               f"'{cat.run_id}') AND status = 'SUCCESS'", db) == "3"
    counts = dict(line.split("|") for line in sql(
        "SELECT asset_key, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "GROUP BY asset_key", db).splitlines())
    assert counts == {**{json.dumps([k]): "2" for k in CHAIN}, json.dumps(["catalog"]): "1"}
    assert sql("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'game_assets'", db) == ASSET
    assert sql("SELECT count(*) FROM concurrency_slots WHERE concurrency_key = 'kiln/local'", db) != "0"
    assert sql("SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL", db) == "0"
    for home in ("home-a", "home-b"):  # nothing went to a local SQLite database
        assert not list((tmp_path / home).rglob("*.db")), home
