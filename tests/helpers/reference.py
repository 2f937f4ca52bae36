"""The one sys.path trick of the project: the read-only reference oracle beside the checkout.

Shared by the tests (``conftest``) and the benchmark (``bench``), so the oracle's location
(``../shared/oracle`` from the project root) is written down once.
"""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ORACLE_DIR = PROJECT_ROOT.parent / "shared" / "oracle"
if str(ORACLE_DIR) not in sys.path:
    sys.path.insert(0, str(ORACLE_DIR))

import oracle  # noqa: E402

__all__ = ["ORACLE_DIR", "oracle"]
