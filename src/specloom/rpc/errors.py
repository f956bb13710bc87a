"""Map domain errors to gRPC status codes."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from specloom.errors import SpecloomError

STATUS_OF: Mapping[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}


def status_of(error: SpecloomError) -> grpc.StatusCode:
    """The status code for a domain error."""
    return STATUS_OF.get(error.code, grpc.StatusCode.UNKNOWN)


def error_named(code: str, message: str) -> SpecloomError:
    """The domain error for a status code name (a batch item's error)."""
    from specloom import errors as domain

    by_name: dict[str, type[SpecloomError]] = {
        kind.code: kind
        for kind in (
            domain.InvalidArgument,
            domain.NotFound,
            domain.AlreadyExists,
            domain.FailedPrecondition,
            domain.Aborted,
            domain.ResourceExhausted,
            domain.Unauthenticated,
            domain.PermissionDenied,
            domain.DeadlineExceeded,
            domain.Unavailable,
        )
    }
    return by_name.get(code, domain.Unavailable)(message or code)


def error_of(error: grpc.aio.AioRpcError) -> SpecloomError:
    """A domain error for a failed call to another service, code preserved.

    An orchestrator that gets NOT_FOUND from Sessions answers NOT_FOUND
    itself: re-raising the same code keeps the contract end to end.
    """
    from specloom import errors as domain

    by_code: dict[grpc.StatusCode, type[SpecloomError]] = {
        grpc.StatusCode.INVALID_ARGUMENT: domain.InvalidArgument,
        grpc.StatusCode.NOT_FOUND: domain.NotFound,
        grpc.StatusCode.ALREADY_EXISTS: domain.AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: domain.FailedPrecondition,
        grpc.StatusCode.ABORTED: domain.Aborted,
        grpc.StatusCode.RESOURCE_EXHAUSTED: domain.ResourceExhausted,
        grpc.StatusCode.UNAUTHENTICATED: domain.Unauthenticated,
        grpc.StatusCode.PERMISSION_DENIED: domain.PermissionDenied,
        grpc.StatusCode.DEADLINE_EXCEEDED: domain.DeadlineExceeded,
    }
    kind = by_code.get(error.code(), domain.Unavailable)
    return kind(error.details() or error.code().name)
