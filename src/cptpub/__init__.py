"""cptpub: per-code healthcare billing publications.

Pipeline stages:
records and data (``records``, ``store``, ``ingest``, ``demo``) -> section content (``analysis``, ``sections``,
``notebooks/``) -> execution (``execute``) -> assembly (``assemble``) -> outputs (``edition``, ``batch``,
``publish``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cptpub")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
