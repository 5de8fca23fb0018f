"""newsmill: batch news ingestion — discover, fetch politely, clean, extract article text, metadata and
copyright, store as Parquet, query with DuckDB, orchestrated by Prefect.

One import name. The repository's top-level folders are mapped into it by ``pyproject.toml``::

    flows/      -> newsmill.flows       Prefect flows, the batch engine, serving
    tasks/      -> newsmill.tasks       one module per stage (discover, fetch, clean, extract, ...)
    warehouse/  -> newsmill.warehouse   Arrow schemas, Parquet writer, DuckDB catalog and queries
    config/     -> newsmill.config      bundled TOML (defaults, rules, site files, demo) as package data
    newsmill/cli/                       the ``newsmill`` command line (``python -m newsmill``)
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
