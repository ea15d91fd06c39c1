"""Feed aggregator: full-text news mirrors in, clean merged Atom feeds out.

The data flow is the architecture; each stage is one module (or package) named after it::

    config.toml ─▶ Source ─fetch─▶ Fetched (bytes + origin) ─adapter─▶ Item ─clean─▶ Item
       ─dedupe─▶ new / updated / duplicate ─store (SQLite)─▶ entries for a feed
       ─writer─▶ Atom bytes ─publish─▶ feeds/

``pipeline.run_once`` is the only code that calls more than one stage; the CLI calls the pipeline.
"""

__version__ = "0.1.0"
