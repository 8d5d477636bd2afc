"""The refusals of the service: each becomes a 4xx (or 503) answer with a JSON body
`{"error": {"status": ..., "code": ..., "message": ...}}` that says what is wrong."""
from __future__ import annotations

from oddity.core.errors import OddityError


class Refusal(OddityError):
    """A request the service refuses.

    Parameters
    ----------
    status : int
        HTTP status code of the answer.
    code : str
        Short machine-readable reason, e.g. ``"image_too_large"``.
    message : str
        What is wrong and how to fix it, naming the field or file at fault.
    headers : dict, optional
        Extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body of the answer."""
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}
