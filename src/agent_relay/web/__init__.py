"""The browser side, as the Python package ships it: ``static/`` holds the SDK and page
bundles built from clients/browser/ (committed, so no Node is needed at run time)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
