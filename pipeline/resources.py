"""Resources: where Kiln keeps blobs and publishes exports, chosen per deployment.

Left unset, both follow the environment (DESIGN.md): `KILN_STORE_URI` (default
`$KILN_DATA_DIR/store`) and `KILN_EXPORT_URI` (default `$KILN_DATA_DIR/exports`); either may be
`s3://bucket/prefix`, reached through boto3's standard credential chain and `AWS_ENDPOINT_URL_S3`.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field

from . import settings
from .storage import BlobStore, open_store


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
