"""Ingest: the far end of the write hook, from a file closed in the mount to an image
found by `ls search/<query>/`.

1. FUSE `release` of a file written through the mount: `fs/operations.py`
   `SemfsOperations.release` -> `fs/passthrough.py` `Passthrough.release`, which reports
   the written file's names with a reopened descriptor to
2. the change tracker, `catalog/tracker.py` `ChangeTracker.written`. It returns at once
   (`cp` waits for nothing more); its background task hashes the content and records it
   with `catalog/files.py` `FileRecords.upsert`, which puts new content on
3. the durable ingest queue in SQLite (`catalog/queue.py`, table `ingest_queue`); the
   tracker wakes
4. the ingest worker, `ingest/worker.py` `IngestWorker`, a thread: it takes a batch with
   `IngestQueue.queue_items`, decodes the images in a thread pool (`ml/imaging.py`),
   captions them (`ml/captioner.py`), embeds the captions (`ml/embedder.py`), stores
   caption, keywords and vector with `IngestQueue.store_result`, and adds each vector to
   the index (`search/index.py` `VectorIndex.add`) of the text search space
   (`search/engine.py`). The views are told, and `search/<query>/` lists it
   (`fs/views/search.py`).

When the queue is empty, the worker computes image features for search by example
(`ingest/features.py`). `ingest/prepare.py` readies the catalog and models for a bulk
`semfs index`. A crash anywhere loses nothing: the queue is in the catalog, and the next
mount's reconcile (`catalog/reconcile.py`) finds what the tracker never recorded.
"""
