"""Whether the Hugging Face hub can be asked at all: offline mode, or a quick probe of its endpoint.

huggingface_hub retries an unreachable endpoint for ~25 s per call; one TCP probe of 3 s answers the
same question first, so an offline machine goes straight to the local cache. Shared by every reader
of the hub (the data here; the model loader can use it too).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline_mode() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set in the environment or in huggingface_hub's constants."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(str(flag).strip().upper() in _TRUE for flag in flags) or bool(constants.HF_HUB_OFFLINE)


def hub_unavailable() -> str | None:
    """Why the hub cannot be used (offline mode, or its endpoint refuses a TCP connection within 3 s), or None."""
    if offline_mode():
        return "offline mode (HF_HUB_OFFLINE)"
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # reachability goes through the proxy; let the hub client find out
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return None
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as error:
        return f"hub {constants.ENDPOINT} unreachable ({error})"
