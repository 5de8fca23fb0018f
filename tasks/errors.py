"""Exceptions of newsmill.

Errors in the *data* (a URL that times out, a page with no article, a feed that does not parse) are
values: they become rows in the ``pages`` table with an ``outcome`` and an ``error``. Exceptions are for
programmer and configuration errors and for conditions under which a run cannot proceed::

    NewsmillError
    ├── ConfigError          bad or unknown config key/value (message names the key)
    ├── WarehouseError       warehouse unusable (unwritable, corrupt schema, ...)
    │   └── WarehouseLocked  another writer holds the warehouse lock
    └── UnsafeQuery          `newsmill sql` refused a statement (not read-only, multiple statements, ...)

The CLI turns any ``NewsmillError`` into a one-line message on stderr and a non-zero exit code.
"""

from __future__ import annotations


class NewsmillError(Exception):
    """Base class; the CLI prints ``str(exc)`` on one line and exits non-zero."""

    exit_code = 2


class ConfigError(NewsmillError):
    """A configuration file or value is invalid. The message names the key."""


class WarehouseError(NewsmillError):
    """The warehouse cannot be used (unwritable directory, broken layout, ...)."""


class WarehouseLocked(WarehouseError):
    """Another writer holds the warehouse lock."""

    exit_code = 3


class UnsafeQuery(NewsmillError):
    """A statement given to ``newsmill sql`` is not a single read-only query."""
