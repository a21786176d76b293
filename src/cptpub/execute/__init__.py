"""Execution: section notebooks run per code through Papermill (``runner``): in the worker process (``inprocess``),
on warm kernels (``warm``) or on a fresh kernel per notebook."""

from cptpub.execute.runner import FRESH_ENGINE, INPROCESS_ENGINE, WARM_ENGINE, run_sections, section_parameters

__all__ = ["FRESH_ENGINE", "INPROCESS_ENGINE", "WARM_ENGINE", "run_sections", "section_parameters"]
