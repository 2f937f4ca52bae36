"""The Prometheus endpoint of a daemon running in this process."""

from __future__ import annotations

import urllib.request

from helpers.daemons import Running


def metrics_url(running: Running) -> str:
    return next(a for a in running.daemon.addresses if a.startswith("metrics:")).removeprefix("metrics:")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
