"""The WhatsApp bridge's LID-mapping directory, read for ``whatsapp.canonical``.

The bridge writes ``lid-mapping-<id>.json`` and ``lid-mapping-<id>_reverse.json``, each one
JSON string naming the other form of the same person. Files are read on every lookup, not
cached: the bridge adds them while the daemon runs. A file that cannot be read (bad UTF-8, a
name too long for the file system) counts as absent, where the reference raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sessiond.logs import hashed

log = logging.getLogger("sessiond.lid_mapping")  # the logger's name predates the module's place


class MappingDirectory:
    """``mapped`` for ``whatsapp.canonical``: the values a directory's mapping files hold."""

    def __init__(self, directory: Path):
        self.directory = directory

    def __call__(self, identifier: str) -> Iterator[Any]:
        for suffix in ("", "_reverse"):
            path = self.directory / f"lid-mapping-{identifier}{suffix}.json"
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:  # the reference crashed on some of these
                extra = {"directory": str(self.directory), "id": hashed(identifier), "error": type(exc).__name__}
                log.warning("unreadable WhatsApp mapping file", extra=extra)
