"""Batch builds: many editions in parallel worker processes (or on a dask cluster), skipping the ones whose
inputs have not changed, publishing each into ``dist/`` atomically with ``dist/manifest.json``.

``keys`` (what an edition is made from), ``manifest`` (what ``dist/`` holds), ``tasks`` (one code in a worker),
``executors`` (local processes; ``dask_executor``), ``runner`` (the batch itself), ``progress`` (what the user sees).
The names below come from ``runner`` when first used: a worker process (``cptpub.batch.worker``) never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cptpub.batch.runner import BatchOptions, BatchResult, run_batch

__all__ = ["BatchOptions", "BatchResult", "run_batch"]


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cptpub.batch import runner

    return getattr(runner, name)
