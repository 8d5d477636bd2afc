"""Limits of a running service, with the defaults `oddity serve` uses (no heavy imports, so
the command line can build its options from them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of a running service.

    Parameters
    ----------
    api_key : str or None
        Key every protected route needs in `X-API-Key`; None: no key.
    max_upload_bytes : int
        Largest request body.
    max_pixels : int
        Largest width x height of one image.
    max_images : int
        Most images in one request.
    batch : int
        Most images of concurrent requests scored together in one call (per model).
    batch_wait_ms : float
        Longest wait for more requests after the first of a batch arrived (only when fewer
        than `batch` images are waiting).
    queue : int
        Requests allowed to wait beyond those being scored; more are answered 503.
    retry_after_s : int
        Seconds a refused client is told to wait.
    """

    api_key: str | None = None
    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_images: int = 16
    batch: int = 8
    batch_wait_ms: float = 5.0
    queue: int = 64
    retry_after_s: int = 1
