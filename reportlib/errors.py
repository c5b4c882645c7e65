"""Domain exceptions. Messages name the field and the problem, never the value."""

from __future__ import annotations


class ReportlibError(Exception):
    """Base class for every error reportlib raises on purpose."""


class ReportValidationError(ReportlibError, ValueError):
    """An argument cannot be stored; ``field`` names it and ``problem`` says why."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class UnknownEmailError(ReportValidationError):
    """The report names an email that has no ``incoming_emails`` row."""

    def __init__(self, field: str = "email_id") -> None:
        super().__init__(field, "no incoming_emails row with this id")


class ReviewError(ReportlibError):
    """A review action cannot be carried out (not claimed, already decided, ...)."""


class ReportNotFoundError(ReportlibError, LookupError):
    """No processing report exists for the given email."""


class DatabaseUnavailableError(ReportlibError):
    """The database did not answer in time or refused the connection."""


class DatabaseAccessError(DatabaseUnavailableError):
    """The database refused the credentials, or the named database does not exist.

    A subclass of :class:`DatabaseUnavailableError` (callers that catch that still catch
    this), but waiting will not help: the configuration has to change.
    """


class DatabaseReadOnlyError(DatabaseUnavailableError):
    """The database accepts only reads: a hot standby, or a server in read-only mode.

    Writes (reports, claims, decisions, rollup maintenance) belong on the primary,
    ``DATABASE_URL``; waiting will not help.
    """


class ReportTooLargeError(ReportValidationError):
    """A value, a list or a whole report is larger than the configured limit."""
