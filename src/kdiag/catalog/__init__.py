"""The dump catalog: every crash dump kdiag has seen, identified by content, grouped by
crash signature (``kdiag dumps``, docs/dumps.md).

Indexing (reads dumps the way ``kdiag analyze`` triages them, and nothing more):

* :func:`index_dump(store, path, *, host=None, source="drill", account_id=None)
  <kdiag.catalog.scan.index_dump>` -> :class:`DumpEntry`: one dump file or split set; a
  dump already known by its content identity gains the path. Raises the typed
  ``DumpFormatError``/``ConfigError`` for a bad file, after recording it as rejected.
* :func:`scan(store, operands, *, host=None, source="scan", account_id=None, progress=None)
  <kdiag.catalog.scan.scan>` -> :class:`ScanReport`: ``/var/crash``-style trees and loose
  files; bad files are recorded as :class:`Rejected` with their error code, never abort.

Queries (what ``kdiag dumps`` and the browser console show; all account-scoped, the
default account when ``account_id`` is ``None``; all return frozen records):

* :func:`list_dumps(store, *, account_id, since, signature_id, limit)` -> ``list[DumpEntry]``,
  newest crash first;
* :func:`show_dump(store, dump_id, *, account_id)` -> :class:`DumpDetail` (the ``kdiag
  analyze`` summary, class, signature, log tail, every file); ``NoSuchEntity`` otherwise;
* :func:`list_rejects(store, *, account_id)` -> ``list[Rejected]``;
* :func:`group_dumps(store, *, account_id, since)` -> ``list[DumpGroup]`` (by signature:
  count, first and last seen, hosts, releases, dump ids), biggest group first;
* :func:`occurrences(store, *, account_id, signature_id, since, bucket="day")` ->
  ``list[Occurrence]``: dumps per signature per hour, day or week, for charts.

The content identity (:func:`content_identity`) is documented in
:mod:`kdiag.catalog.identity`: renamed, copied and compressed copies of a dump are one
entry with several paths; two crashes of one kernel, or a truncated copy, are not.
"""

from kdiag.catalog.groups import BUCKETS, group_dumps, group_entries, occurrences
from kdiag.catalog.identity import content_identity
from kdiag.catalog.queries import list_dumps, list_rejects, show_dump
from kdiag.catalog.records import (
    DumpDetail,
    DumpEntry,
    DumpGroup,
    DumpPath,
    Occurrence,
    Rejected,
    ScanOutcome,
    ScanReport,
)
from kdiag.catalog.scan import index_dump, scan

__all__ = (
    "BUCKETS",
    "DumpDetail",
    "DumpEntry",
    "DumpGroup",
    "DumpPath",
    "Occurrence",
    "Rejected",
    "ScanOutcome",
    "ScanReport",
    "content_identity",
    "group_dumps",
    "group_entries",
    "index_dump",
    "list_dumps",
    "list_rejects",
    "occurrences",
    "scan",
    "show_dump",
)
