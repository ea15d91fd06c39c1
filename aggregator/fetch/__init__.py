"""Fetch stage: bytes from where a source lives, with nothing decided about what they mean.

* ``files``: archive folders on disk (``scan`` lists them without opening a file, ``read``
  reads one), for the pipeline's read-only-what-changed runs;
* ``http``: feed URLs, fetched concurrently with conditional GET, limits, redirects checked
  hop by hop, an address policy, Retry-After and backoff (the only httpx import).

Neither writes state: the pipeline stores validators, snapshots and failures. ``http`` is
imported by the pipeline only when a run has URL sources: httpx costs a tenth of a second to
import, which a no-change run over archives should not pay.
"""

from aggregator.fetch.files import MAX_FILE_BYTES, read, scan, takes

__all__ = ["MAX_FILE_BYTES", "read", "scan", "takes"]
