"""Demo inputs: synthetic rate files in the payers' and CMS's real formats, clearly marked as demo."""

from cptpub.demo.generator import DEMO_MARKER, DemoInputs, write_demo_inputs

__all__ = ["DEMO_MARKER", "DemoInputs", "write_demo_inputs"]
