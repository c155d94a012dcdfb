"""Business errors carry the HTTP status they become; one renderer per edge turns them into replies."""


class AlbsError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(AlbsError):
    status_code = 404


class Conflict(AlbsError):
    status_code = 409


class Forbidden(AlbsError):
    status_code = 403


class Invalid(AlbsError):
    status_code = 422


class Unavailable(AlbsError):
    status_code = 503


def error_for_status(status: int, detail: str) -> AlbsError:
    """Rebuild an error that travelled in an RPC reply."""
    for cls in (NotFound, Conflict, Forbidden, Invalid, Unavailable):
        if cls.status_code == status:
            return cls(detail)
    error = AlbsError(detail)
    error.status_code = status
    return error
