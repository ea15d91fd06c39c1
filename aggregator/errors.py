"""The exception tree. Every error the program raises on purpose is one of these.

::

    AggregatorError                 anything we raise on purpose
     ├── ConfigError                config.toml is missing, malformed or inconsistent
     ├── SourceError                one source (file, folder or URL) could not be used
     │    ├── FetchError            the bytes could not be read or downloaded
     │    └── ParseError            the bytes are not an item the adapter understands
     ├── StoreError                 the state database cannot be opened, migrated or written
     │    └── StateBusy             another process is running on the same state database
     ├── PublishError               a feed file could not be written into the output folder
     └── ServeError                 the HTTP server cannot listen where it was told to

Third-party exceptions are wrapped (``raise ... from e``) in the module that owns the library,
so callers only ever catch these. Messages are written for the person running the tool:
what happened, to which file or source, and what to do about it.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error raised on purpose."""


class ConfigError(AggregatorError):
    """config.toml is missing, malformed, or names things that do not exist."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class SourceError(AggregatorError):
    """One source, file or item could not be used; the run goes on without it."""

    def __init__(self, origin: str, reason: str) -> None:
        super().__init__(f"{origin}: {reason}")
        self.origin = origin
        self.reason = reason


class FetchError(SourceError):
    """The bytes could not be read (missing file, permission, I/O error)."""


class ParseError(SourceError):
    """The bytes are not an item this adapter understands."""


class StoreError(AggregatorError):
    """The state database cannot be opened, migrated or written."""


class StateGone(StoreError):
    """The state database that a running daemon uses is no longer there."""


class StateBusy(StoreError):
    """Another aggregator process holds the state database's lock."""


class PublishError(AggregatorError):
    """A feed file could not be written into the output folder."""


class ServeError(AggregatorError):
    """``aggregator serve`` cannot listen on its address (in use, not ours, no permission)."""
