"""Execution: section notebooks run per code through Papermill (``runner``), optionally on warm kernels (``warm``)."""

from cptpub.execute.runner import FRESH_ENGINE, WARM_ENGINE, run_sections, section_parameters

__all__ = ["FRESH_ENGINE", "WARM_ENGINE", "run_sections", "section_parameters"]
