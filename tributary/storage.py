"""DeepLake as the write model: one dataset per tenant/dataset under the storage root.

Calls here are synchronous (DeepLake releases the GIL); async callers run them in a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import deeplake

from events.commands import FieldType, Metric

SPEC_KEY = "tributary_spec"


@dataclass(frozen=True)
class DatasetSpec:
    dimensions: int
    metric: Metric
    metadata_schema: dict[str, FieldType] = field(default_factory=dict)
    text_field: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "dimensions": self.dimensions,
                "metric": self.metric,
                "metadata_schema": self.metadata_schema,
                "text_field": self.text_field,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str) -> DatasetSpec:
        data = json.loads(raw)
        return cls(
            dimensions=int(data["dimensions"]),
            metric=data["metric"],
            metadata_schema=dict(data.get("metadata_schema") or {}),
            text_field=data.get("text_field"),
        )


class DatasetStore:
    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def url(self, tenant: str, dataset: str) -> str:
        # Tenant and dataset are validated names (no dots or slashes), so this cannot escape the root.
        return f"{self.root}/{tenant}/{dataset}"

    def exists(self, tenant: str, dataset: str) -> bool:
        return bool(deeplake.exists(self.url(tenant, dataset)))

    def spec(self, tenant: str, dataset: str) -> DatasetSpec | None:
        if not self.exists(tenant, dataset):
            return None
        ds = deeplake.open_read_only(self.url(tenant, dataset))
        if SPEC_KEY not in ds.metadata:
            return None
        return DatasetSpec.from_json(str(ds.metadata[SPEC_KEY]))

    def version(self, tenant: str, dataset: str) -> str:
        return str(deeplake.open_read_only(self.url(tenant, dataset)).version)

    def create(self, tenant: str, dataset: str, spec: DatasetSpec, message: str) -> str:
        """Create the dataset and commit its schema; returns the committed version."""
        # Embeddings are stored as plain float32 arrays: DeepLake's own vector index is not used for
        # serving (see docs/architecture.md), and building it stalls commits near a million rows.
        ds = deeplake.create(
            self.url(tenant, dataset),
            schema={
                "id": deeplake.types.Text(),
                "embedding": deeplake.types.Array("float32", shape=[spec.dimensions]),
                "text": deeplake.types.Text(),
                "metadata": deeplake.types.Dict(),
            },
        )
        ds.metadata[SPEC_KEY] = spec.to_json()
        ds.commit(message)
        return str(ds.version)

    def delete(self, tenant: str, dataset: str) -> None:
        if self.exists(tenant, dataset):
            deeplake.delete(self.url(tenant, dataset))
