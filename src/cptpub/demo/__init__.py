"""Demo inputs: synthetic payer rate files in the payers' real format, clearly marked as demo, and CMS's fee
schedule rows of the demo codes."""

from cptpub.demo.generator import DEMO_CODES, DemoInputs, write_demo_inputs
from cptpub.ingest.common import DEMO_MARKER

__all__ = ["DEMO_CODES", "DEMO_MARKER", "DemoInputs", "write_demo_inputs"]
