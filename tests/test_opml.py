"""`aggregator opml export` and `aggregator opml import FILE`, run as a reader would: the CLI as
a subprocess on a workspace, with tests/data/reader-export.opml (a reader's export with a
folder, a duplicate, a non-http URL and an outline without a URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import Workspace, make_workspace
from lxml import etree

READER = Path(__file__).parent / "data" / "reader-export.opml"
BBC = "https://feeds.bbci.co.uk/zhongwen/simp/rss.xml"
NYT = "https://cn.nytimes.com/rss/"


def _sources(ws: Workspace) -> list[dict[str, str]]:
    return tomllib.loads(ws.config.read_text(encoding="utf-8"))["sources"]  # type: ignore[no-any-return]


def test_import_adds_feeds_and_says_what_it_skipped(ws: Workspace) -> None:
    before = ws.config.read_text(encoding="utf-8")
    proc = ws.cli("opml", "import", str(READER), check=True)
    assert proc.stdout.splitlines() == [
        f"added source bbc: BBC 中文 <{BBC}>",
        f"added source cn-nytimes-com: 纽约时报中文网 <{NYT}>",
        "skipped BBC again: listed twice in the file (added once, as 'bbc')",
        "skipped A local file: 'file:///etc/passwd' is not an http(s) feed URL (must be an "
        "absolute http(s) URL of a feed)",
        "skipped no url: no xmlUrl: the outline names no feed address",
        f"{READER}: 2 added, 3 skipped; see the end of config.toml",
    ]
    text = ws.config.read_text(encoding="utf-8")
    assert text.startswith(before)  # the existing text and comments are kept
    added = _sources(ws)[3:]
    assert added == [
        {"name": "bbc", "title": "BBC 中文", "url": BBC, "adapter": "auto",
         "homepage": "https://www.bbc.com/zhongwen/simp"},
        {"name": "cn-nytimes-com", "title": "纽约时报中文网", "url": NYT, "adapter": "auto"},
    ]  # fmt: skip
    assert ws.cli("check").returncode == 0
    again = ws.cli("opml", "import", str(READER), check=True)
    assert f"{READER}: 0 added, 5 skipped" in again.stdout
    assert "skipped BBC 中文: already configured as source 'bbc'" in again.stdout
    assert ws.config.read_text(encoding="utf-8") == text


def test_import_skips_addresses_a_fetch_could_not_use_and_names_alike_feeds_apart(
    ws: Workspace, tmp_path: Path
) -> None:
    """A malformed IPv6 host (it crashed the import), a port out of range and a newline
    inside the address are skipped with the reason; 300 feeds of one title get a name each;
    a title holding DEL is written escaped."""
    bad = ["http://[zz]/x", "http://x.example:99999/f", "http://x.example/a&#10;b"]
    outlines = [f'<outline type="rss" text="bad" xmlUrl="{u}"/>' for u in bad]
    outlines += [
        f'<outline type="rss" text="Same" xmlUrl="https://s.example/{n}.xml"/>' for n in range(300)
    ]
    # DEL in a title: TOML refuses it raw (the whole import failed, blamed on `sources`).
    # A home page readers could not open is left out (config.toml would refuse it).
    outlines.append(
        '<outline type="rss" text="A\x7fB &amp; &quot;C&quot;" xmlUrl="https://d.example/f"'
        ' htmlUrl="javascript:alert(1)"/>'
    )
    file = tmp_path / "many.opml"
    file.write_text(
        f'<opml version="2.0"><body>{"".join(outlines)}</body></opml>', encoding="utf-8"
    )
    proc = ws.cli("opml", "import", str(file))
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("skipped bad")]
    assert len(skipped) == 3 and all("is not an http(s) feed URL" in line for line in skipped)
    names = [s["name"] for s in _sources(ws)[3:]]
    assert names == ["same", *(f"same-{n}" for n in range(2, 301)), "a-b-c"]
    assert _sources(ws)[-1]["title"] == 'A\x7fB & "C"'
    assert "homepage" not in _sources(ws)[-1]

    assert ws.cli("check").returncode == 0


def test_import_dry_run_and_bad_files_change_nothing(ws: Workspace, tmp_path: Path) -> None:
    before = ws.config.read_text(encoding="utf-8")
    proc = ws.cli("opml", "import", "--dry-run", str(READER), check=True)
    assert "would add source bbc" in proc.stdout
    not_opml = tmp_path / "page.html"
    not_opml.write_text("<html><body>hello</body></html>", encoding="utf-8")
    proc = ws.cli("opml", "import", str(not_opml))
    assert proc.returncode == 2 and "not an OPML file (no <opml> with a <body>)" in proc.stderr
    laughs = tmp_path / "laughs.opml"
    doc = (
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<opml version="2.0"><body><outline type="rss" text="&b;" xmlUrl="https://x.example/&b;"/>'
        "</body></opml>"
    )
    for encoding in ("utf-8", "utf-16", "utf-16-be", "utf-32"):  # (utf-16-be: no BOM)
        laughs.write_bytes(doc.encode(encoding))
        proc = ws.cli("opml", "import", str(laughs))
        assert proc.returncode == 2 and "declares XML entities" in proc.stderr, encoding
        assert "aaaaaaaaaa" not in proc.stdout + proc.stderr  # never expanded
    assert ws.config.read_text(encoding="utf-8") == before


def test_import_into_a_config_it_cannot_extend_adds_nothing_and_says_which_file(
    ws: Workspace,
) -> None:
    """Sources written as an inline array (``sources = [...]``) cannot take ``[[sources]]``
    tables after them: the import names the config it was given, says nothing was added, and
    leaves the file as it was. An import that works keeps the file's permissions."""
    inline = ws.root / "inline.toml"
    inline.write_text(
        'base_url = "https://news.example.org/feeds/"\noutput_dir = "out"\n'
        'sources = [{name = "voa", path = "seeds/voa", adapter = "voa"}]\n',
        encoding="utf-8",
    )
    before = inline.read_text(encoding="utf-8")
    proc = ws.cli("opml", "import", "--config", str(inline), str(READER))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "added" not in proc.stdout
    said = " ".join(proc.stderr.split())
    assert f"nothing added: {inline}: cannot add [[sources]] tables at its end" in said
    assert "an inline array, sources = [...]?" in said and "at line" not in said
    assert inline.read_text(encoding="utf-8") == before
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".")] == []  # no leftovers
    ws.config.chmod(0o600)  # e.g. it holds an API key in a header
    if os.geteuid() == 0:  # (CI runs as root) a service user's config stays the user's
        os.chown(ws.config, 65534, 65534)
    owner = ws.config.stat().st_uid, ws.config.stat().st_gid
    ws.cli("opml", "import", str(READER), check=True)
    assert ws.config.stat().st_mode & 0o777 == 0o600
    assert (ws.config.stat().st_uid, ws.config.stat().st_gid) == owner
    assert len(_sources(ws)) == 5


def test_import_into_a_config_with_another_hard_link_extends_it_in_place(ws: Workspace) -> None:
    """A config that cannot be replaced by a new file (here: another hard link to it; also a
    file bind-mounted into a container, or a folder the user cannot write) is appended to in
    place, so every name of it has the new sources."""
    twin = ws.root / "twin.toml"
    twin.hardlink_to(ws.config)
    before = ws.config.read_text(encoding="utf-8")
    ws.cli("opml", "import", str(READER), check=True)
    assert twin.read_text(encoding="utf-8") == ws.config.read_text(encoding="utf-8")
    assert twin.stat().st_ino == ws.config.stat().st_ino
    assert ws.config.read_text(encoding="utf-8").startswith(before)
    assert [s["name"] for s in _sources(ws)][3:] == ["bbc", "cn-nytimes-com"]


def test_export_lists_url_sources_and_every_output_feed(ws: Workspace) -> None:
    folders_only = etree.fromstring(ws.cli("opml", "export", check=True).stdout.encode())
    assert [g.get("text") for g in folders_only.find("body")] == ["Feeds"]  # no empty group
    ws.cli("opml", "import", str(READER), check=True)
    proc = ws.cli("opml", "export", check=True)
    root = etree.fromstring(proc.stdout.encode())
    groups = {g.get("text"): g for g in root.find("body")}
    assert [o.get("xmlUrl") for o in groups["Sources"]] == [BBC, NYT]
    assert [o.get("xmlUrl") for o in groups["Feeds"]] == [
        f"https://news.example.org/feeds/{n}.atom"
        for n in ("all", "voa", "dw", "aljazeera", "bbc", "cn-nytimes-com")
    ]
    out = ws.root / "export.opml"
    ws.cli("opml", "export", "--output", str(out), check=True)
    assert out.read_bytes() == proc.stdout.encode()
    # Read back by import: the sources are recognised as the ones configured.
    again = ws.cli("opml", "import", "--dry-run", str(out), check=True).stdout
    assert "skipped BBC 中文: already configured as source 'bbc'" in again
    assert "skipped 纽约时报中文网: already configured as source 'cn-nytimes-com'" in again


def test_export_to_a_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    proc = ws.cli("opml", "export", "-o", str(tmp_path / "missing" / "x.opml"))
    assert proc.returncode == 3
    assert "cannot write it" in proc.stderr and "Traceback" not in proc.stderr
    if Path("/dev/full").exists():  # standard output redirected to a full disk
        with Path("/dev/full").open("wb") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "aggregator", "opml", "export"], cwd=ws.root,
                stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            )  # fmt: skip
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
        assert "cannot write the OPML to standard output (No space left on device)" in proc.stderr
