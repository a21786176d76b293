"""Batch builds: many editions in parallel worker processes (or on a dask cluster), skipping the ones whose
inputs have not changed, publishing each into ``dist/`` atomically with ``dist/manifest.json``.

``keys`` (what an edition is made from), ``manifest`` (what ``dist/`` holds), ``tasks`` (one code in a worker),
``executors`` (local processes; ``dask_executor``), ``runner`` (the batch itself), ``progress`` (what the user sees).
"""

from cptpub.batch.runner import BatchOptions, BatchResult, run_batch

__all__ = ["BatchOptions", "BatchResult", "run_batch"]
