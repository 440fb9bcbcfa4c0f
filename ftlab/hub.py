"""Is a server reachable (the one network probe: the Hugging Face hub here, W&B in ftlab.training.tracking)? For the
hub, decided once per process, before transformers/datasets are imported.

Offline, the libraries retry every hub request for ~30 s before giving up. A two-second probe lets us put them
into offline mode up front (HF_HUB_OFFLINE=1), so cached hub files still load and mirrors take over at once.
"""
from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

_TRUTHY = {"1", "true", "yes", "on"}


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the URL's host and port (the scheme's default port) opens within `timeout`."""
    endpoint = urlparse(url)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def hub_online(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUTHY:
        return False
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)


def enter_offline_mode_if_unreachable() -> bool:
    """Set the libraries' offline switches when the hub is down; returns whether the hub is online."""
    online = hub_online()
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    return online
