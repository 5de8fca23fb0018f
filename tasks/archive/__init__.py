"""Raw response archive: gzipped WARC files in the warehouse, and WARC readers (issue 4).

Layout: ``<warehouse_root>/raw/date=YYYY-MM-DD/<run_id>-<pid>-<n>.warc.gz`` (date of ``fetched_at``,
UTC). Every record is its own gzip member, so ``(rel_path, offset)`` addresses one record and
``read_record`` decompresses only that member.

Torn files: a file is written under ``<name>.open`` and sealed — flushed, fsynced, renamed to ``<name>``,
directory fsynced — when it is rotated (~``max_file_bytes``, default 100 MB), when the date partition
changes, on ``close()`` (the fetcher closes its archive at the end of a run), or after ``idle_seal_s``
(30 s) without a write (a Dask worker's fetcher is never closed); globs of ``*.warc.gz`` never see a
half-written file. The writing process holds an exclusive ``flock`` on its ``.open`` file
from creation to seal, so an ``.open`` file nobody holds is the leftover of a dead (killed) process:
``recover_open_files`` (called by the next archive of any run, and by ``delete_url``) cuts its torn tail
back to the last whole gzip member, fsyncs and seals it. Offsets are byte offsets and stay valid across
the rename and the cut; ``read_record`` also looks at the ``.open`` name so a record can be read back
during the run.

Reading is record by record and total (``WarcReader``): a record that cannot be used (no
``WARC-Target-URI``, an unparsable header, corrupt gzip data, several records in one gzip member) is
reported as a value and reading goes on with the next gzip member (or, in a plain ``.warc``, after the
record's ``Content-Length``); a record cut by the end of the file (a torn gzip member, including a cut
in its 8-byte trailer) is reported as torn, with its URL when its header was read.

The body stored is the raw body as received: still content-encoded (``Content-Encoding`` kept); the
transfer coding is already removed, so a ``Transfer-Encoding`` header is renamed to
``X-Crawler-Transfer-Encoding`` (the Common Crawl convention) and the HTTP block stays consistent.
``read_record`` / ``iter_warc_records`` return the body with Content-Encoding removed.

Layout (private modules; import only the names in ``__all__`` from ``newsmill.tasks.archive``):

* ``_records`` -- ``RawRecord``, ``Skipped``, ``decode_record``, ``record_page`` (what extraction gets of a record),
  ``to_raw`` (a warcio record to one of them);
* ``_writer`` -- ``WarcArchive``;
* ``_reader`` -- ``WarcReader`` / ``WarcItem``, ``read_record``, ``iter_warc_records``, ``scan_members``;
* ``_recovery`` -- ``recover_open_files``.
"""

from newsmill.tasks.archive._reader import (MemberSpan, WarcItem, WarcReader, iter_warc_records, read_record,
                                            scan_members)
from newsmill.tasks.archive._records import (DEFAULT_MAX_RECORD_BYTES, RawRecord, Skipped, decode_record, record_page,
                                             to_raw)
from newsmill.tasks.archive._recovery import recover_open_files
from newsmill.tasks.archive._writer import WarcArchive
from newsmill.tasks.fetch import decode_body

__all__ = ["WarcArchive", "RawRecord", "Skipped", "read_record", "iter_warc_records", "decode_record", "record_page",
           "decode_body", "WarcReader", "WarcItem", "MemberSpan", "scan_members", "recover_open_files", "to_raw",
           "DEFAULT_MAX_RECORD_BYTES"]
