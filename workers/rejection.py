"""Why a handler refuses a command."""

from __future__ import annotations

from events import RejectionCause


class Rejected(Exception):
    """The command is valid but cannot be applied; the reason goes back to the client. Raised before the
    command changed anything, so the batch it is part of goes on without it."""

    def __init__(self, reason: str, cause: RejectionCause = "invalid") -> None:
        super().__init__(reason)
        self.cause: RejectionCause = cause
