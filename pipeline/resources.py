"""Resources: where Kiln keeps blobs and publishes exports, chosen per deployment.

Left unset, both follow the environment (README, *Data layout and settings*): `KILN_STORE_URI` (default
`$KILN_DATA_DIR/store`) and `KILN_EXPORT_URI` (default `$KILN_DATA_DIR/exports`); either may be
`s3://bucket/prefix`, reached through boto3's standard credential chain and `AWS_ENDPOINT_URL_S3`.
"""


import json
from typing import Optional

import dagster as dg
from pydantic import Field

from . import settings
from .storage import BlobStore, RecentBytes, open_store


class KilnStorage(dg.ConfigurableResource):
    """The blob store (images, GLBs, previews by sha256) and the export target."""

    store_uri: Optional[str] = Field(
        default=None, description="Blob store: a folder or s3://bucket/prefix. Default: KILN_STORE_URI or $KILN_DATA_DIR/store."
    )
    export_uri: Optional[str] = Field(
        default=None, description="Export target: a folder or s3://bucket/prefix. Default: KILN_EXPORT_URI or $KILN_DATA_DIR/exports."
    )

    def blob_store(self) -> BlobStore:
        return open_store(self.store_uri or settings.store_uri())

    def export_location(self) -> str:
        return self.export_uri or settings.export_uri()

    def export_target(self):
        from .export.publish import open_target

        return open_target(self.export_location())


# Values this process stored for a run, by (store, run, record): the steps of a run that executes
# in one process (a Celery worker's run, `execute_in_process`) hand them on without a read back
# from the store. A value from another run is always read.
WRITTEN_KEPT_BYTES = 8 * 1024 * 1024
_written = RecentBytes(WRITTEN_KEPT_BYTES)


class ManifestIOManager(dg.ConfigurableIOManager):
    """Asset values (small JSON manifests pointing at blobs) as records in the blob store.

    Every machine of a team reads the same store, so a run on one machine can load what another
    machine materialized (with the default filesystem IO manager they would stay in one
    DAGSTER_HOME). Records: `manifests/<asset_key>/<partition>.json`.
    """

    storage: dg.ResourceDependency[KilnStorage]

    @staticmethod
    def _record(asset_key: dg.AssetKey, partition: str | None) -> str:
        return f"manifests/{'/'.join(asset_key.path)}/{partition or '__all__'}.json"

    @staticmethod
    def _partitions(context) -> list[str | None]:
        return list(context.asset_partition_keys) if context.has_asset_partitions else [None]

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        partitions = self._partitions(context)
        values = obj if len(partitions) > 1 else {partitions[0]: obj}
        store = self.storage.blob_store()
        for partition in partitions:
            record = self._record(context.asset_key, partition)
            data = json.dumps(values[partition], sort_keys=True).encode()
            store.put_record(record, data)
            _written.add((store.uri, context.run_id, record), data)

    def load_input(self, context: dg.InputContext):
        store = self.storage.blob_store()
        partitions = self._partitions(context)
        values = {}
        upstream = context.upstream_output
        run_id = upstream.run_id if upstream is not None else None
        for partition in partitions:
            record = self._record(context.asset_key, partition)
            # a value this process wrote earlier in the same run is read back as written
            data = _written.get((store.uri, run_id, record)) if run_id else None
            data = data if data is not None else store.get_record(record)
            if data is None:
                raise dg.Failure(
                    f"{context.asset_key.to_user_string()} has no stored value"
                    f"{f' for {partition}' if partition else ''} in {store.uri}: materialize it first"
                )
            values[partition] = json.loads(data)
        return values if len(partitions) > 1 else values[partitions[0]]
