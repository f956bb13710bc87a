"""Domain errors, one per gRPC status code a caller can act on.

Domain code raises these; servicers never build status codes by hand. The
mapping to ``grpc.StatusCode`` lives in :mod:`specloom.rpc.errors`, so this
module stays free of grpc and can be used by pure domain code.
"""

from __future__ import annotations


class SpecloomError(Exception):
    """Base of every error that is a deliberate answer to a caller.

    ``code`` is the name of the gRPC status code (``"NOT_FOUND"``...). The
    message is shown to the caller as is: it must name the problem (the
    field, the id, the limit) and never contain secrets.
    """

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SpecloomError):
    """The request is malformed: a field is missing, empty, unknown or out of range."""

    code = "INVALID_ARGUMENT"


class NotFound(SpecloomError):
    """The thing does not exist in the caller's scope (also: exists elsewhere)."""

    code = "NOT_FOUND"


class AlreadyExists(SpecloomError):
    """An idempotency key was reused with a different request."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(SpecloomError):
    """The request is well-formed but the session is not in a state that allows it."""

    code = "FAILED_PRECONDITION"


class Aborted(SpecloomError):
    """A concurrent writer won (version conflict); read again and retry."""

    code = "ABORTED"


class ResourceExhausted(SpecloomError):
    """A payload or count is over a configured cap."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(SpecloomError):
    """No token, or an unknown, revoked or expired one."""

    code = "UNAUTHENTICATED"


class PermissionDenied(SpecloomError):
    """The caller is known but may not do this (a non-admin creating tokens)."""

    code = "PERMISSION_DENIED"


class Unavailable(SpecloomError):
    """A dependency (database, another service) cannot be reached now; retry."""

    code = "UNAVAILABLE"


class DeadlineExceeded(SpecloomError):
    """The operation did not finish in time."""

    code = "DEADLINE_EXCEEDED"
