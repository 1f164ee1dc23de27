"""Errors that carry a message a user can act on.

Every error the UI or the CLI shows to a person is one of these; anything else is a bug.
"""


class HpdashError(Exception):
    """Base class: the message is written for the user, not for a developer."""


class DatasetError(HpdashError):
    """An uploaded or referenced table cannot be used. Nothing was stored."""


class SpecError(HpdashError):
    """A study spec, search space or protocol setting is invalid."""


class StorageError(HpdashError):
    """The study storage or the catalogue cannot be read or written."""


class StudyNotFoundError(HpdashError):
    """No study of that name exists in the storage."""


class ReadOnlyError(HpdashError):
    """The dashboard is in review-only mode (``HPDASH_READ_ONLY=1``): nothing may be changed."""


class AccessDeniedError(HpdashError):
    """A password is required and the one given is missing or wrong."""


class ClusterError(HpdashError):
    """The Dask cluster (``HPDASH_DASK_SCHEDULER``) cannot be reached or cannot run the workers asked for."""
