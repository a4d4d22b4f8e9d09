"""The catalog and models made ready for a bulk ingest (`semfs index`, local or Ray)."""

from __future__ import annotations

from semfs.catalog.database import Catalog
from semfs.catalog.reconcile import reconcile
from semfs.config import Settings
from semfs.search.engine import Engine
from semfs.store.backing import BackingStore


def ready_for_bulk_ingest(settings: Settings, catalog: Catalog, store: BackingStore) -> Engine:
    """What `semfs index` does before ingesting, on either engine: the catalog brought in
    line with the store, the embedder loaded and recorded, captions waiting for it
    embedded, images that failed for no fault of theirs queued again."""
    reconcile(settings, catalog, store)
    engine = Engine(settings, catalog)
    engine.load()
    engine.record_models()
    engine.reembed()
    catalog.queue.requeue_ingest_errors()
    if engine.images is not None:
        engine.convert_image_features()
        catalog.features.requeue_features_not_by(engine.images.model)
    return engine
