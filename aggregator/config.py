"""config.toml -> a validated ``Config``. The only reader of the configuration file.

Input: a path to a TOML file. Output: ``model.Config`` with every path made absolute (relative
paths are relative to the config file's folder) and the output feeds resolved: one merged feed
of every source, one per source, and each configured ``[[feeds]]`` (chosen sources, filters,
script, formats, a file name that must stay inside the output folder). Every problem is reported by its key path
(``sources[1].adapter: unknown adapter 'vao'; known: aljazeera, dw, generic, voa``), all of them at
once, as a ``ConfigError``. pydantic does the type checking; this module adds the rules that span
keys (unique names, known adapters).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from difflib import get_close_matches
from functools import cache, partial
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, get_args
from urllib.parse import urljoin, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aggregator import __version__
from aggregator.adapters import ADAPTERS, AUTO
from aggregator.clean.urls import as_uri, has_host
from aggregator.errors import ConfigError
from aggregator.fetch.files import takes
from aggregator.model import (
    Config,
    FeedSpec,
    FetchPolicy,
    Match,
    Retention,
    ServeSettings,
    Source,
)
from aggregator.script import SCRIPTS
from aggregator.writer import FORMATS, filename

# Names in the output folder the project writes itself; a configured feed may not take them.
RESERVED_FILES = ("feeds.opml", "feed.xsl")
ARCHIVE_DIR = "archive"  # RFC 5005 archive pages: archive/<feed name>/<n>.atom

DEFAULT_CONFIG = Path("config.toml")

_NAME = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _whole(v: object) -> object:
    """A count written as a float that is whole (``max_bytes = 5e6``) as that int; anything
    else as it is, for strict checking (a boolean, a string, 2.5 are refused)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


Whole = Annotated[int, BeforeValidator(_whole)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _seconds(v: object, at_most_days: int) -> float:
    """A duration: a number of seconds, or text like "90s", "30m", "2h", "1d"; at most
    ``at_most_days`` (a schedule or an age of centuries is a typo, and past a date's range)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        seconds = float(v)
    else:
        m = _DURATION.match(v) if isinstance(v, str) else None
        if not m:
            raise ValueError('must be seconds (1800) or a duration like "30m", "2h", "1d"')
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds > at_most_days * 86400:
        days = f"{at_most_days} day" + ("s" if at_most_days != 1 else "")
        raise ValueError(f'must be at most {days} ("{at_most_days}d")')
    return seconds


MAX_INTERVAL_DAYS = 366  # a source polled less than yearly is not a live source
MAX_AGE_DAYS = 36500  # a century: further back than any entry's date

Duration = Annotated[float, Field(gt=0)]


_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def feed_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a feed's address (config.toml's ``url``, an OPML import), or
    None when it can: what ``web_url_problem`` asks."""
    problem = web_url_problem(url)
    if problem is None:
        return None
    if problem.startswith(("is not", "has no")):
        return "must be an absolute http(s) URL of a feed"
    return f"must be an absolute http(s) URL of a feed; it {problem}"


def web_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a page's address readers open (a feed's base_url, a homepage,
    an icon), or None: an absolute http(s) URL with a host, a port that can be, and no space
    or control character (a space in a path is written %20)."""
    if _NOT_IN_URL.search(url):
        return "holds a space or control character (write a space in a path as %20)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range (:99999)
    except ValueError as e:
        return f"is malformed ({e})"
    if parts.scheme not in ("http", "https"):
        return "is not an http(s) URL"
    if not has_host(url):
        return "has no host a reader could open"
    return None


def _page_url(v: str | None) -> str | None:
    """A homepage, link or icon: an absolute http(s) URL, written as a URI."""
    if v is None:
        return None
    problem = web_url_problem(v)
    if problem:
        raise ValueError(
            f"must be an absolute http(s) URL, e.g. 'https://www.example.org/'; {v!r} {problem}"
        )
    return as_uri(v)


def _icon_url(v: str | None) -> str | None:
    """An icon: an absolute http(s) URL, or one relative to base_url ('icon.png', the
    output folder's file), made absolute in ``_build`` (JSON Feed needs it absolute)."""
    if v is not None and not urlsplit(v).scheme and not v.startswith("//"):
        if _NOT_IN_URL.search(v):
            raise ValueError(
                "must be an absolute http(s) URL or a path relative to base_url, e.g. "
                f"'icon.png'; {v!r} holds a space or control character (write a space as %20)"
            )
        return as_uri(v)
    return _page_url(v)


# An xml:lang value (RFC 4646's shape, as the RELAX NG schema of RFC 4287 checks it).
_LANG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


def _lang(v: str | None) -> str | None:
    """A language tag; 'zh_CN' (a POSIX locale's spelling) is taken as 'zh-CN'."""
    v = v.replace("_", "-") if v is not None else None
    if v is not None and not _LANG.fullmatch(v):
        raise ValueError(
            f"must be a language tag like 'zh-Hans', 'zh-TW' or 'en' (letters and digits "
            f"joined by '-'); {v!r} is not one"
        )
    return v


@cache
def _cron_problem(line: str) -> str | None:
    """What is wrong with a crontab line, or None. Cached: 500 sources often share a line."""
    from aggregator.daemon import cron_trigger

    try:
        trigger = cron_trigger(line)
    except ValueError as e:
        return (
            f'{e}; write a crontab line "minute hour day month weekday" in UTC, e.g. "*/20 * * * *"'
        )
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        return "never comes: no such date (February 30th?)"
    return None


class _FetchSettings(_Strict):
    """Settings of URL sources; [fetch] holds the defaults, a source may override each."""

    interval: Duration | None = None
    cron: str | None = None
    timeout: Duration | None = None
    user_agent: str | None = None
    headers: dict[str, str] | None = None
    max_items: Whole | None = Field(default=None, ge=1, le=100_000)
    max_bytes: Whole | None = Field(default=None, ge=1024)
    max_redirects: Whole | None = Field(default=None, ge=0, le=20)
    allow_private: bool | None = None

    @field_validator("interval", "timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float | None:
        return None if v is None else _seconds(v, MAX_INTERVAL_DAYS)

    @field_validator("cron")
    @classmethod
    def _crontab(cls, v: str | None) -> str | None:
        if v is not None:
            problem = _cron_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _one_schedule(self) -> _FetchSettings:
        if self.cron is not None and self.interval is not None:
            raise ValueError("give either interval or cron, not both")
        return self

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for name, value in (v or {}).items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name) or "\n" in value:
                raise ValueError(f"{name!r} is not a valid HTTP header")
        return v


class _Fetch(_FetchSettings):
    concurrency: Whole = Field(default=16, ge=1, le=256)
    per_host: Whole = Field(default=4, ge=1, le=64)


class _Source(_FetchSettings):
    name: _NAME
    title: str | None = None
    path: str | None = None
    url: str | None = None
    adapter: str = AUTO
    include: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    lang: str | None = None
    author: str | None = None
    homepage: str | None = None
    icon: str | None = None

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, v: str) -> str:
        if v != AUTO and v not in ADAPTERS:
            known = ", ".join(sorted(ADAPTERS))
            raise ValueError(f"unknown adapter {v!r}; known: {known}, or {AUTO!r} to detect")
        return v

    _check_lang = field_validator("lang")(_lang)
    _check_pages = field_validator("homepage")(_page_url)
    _check_icon = field_validator("icon")(_icon_url)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        problem = None if v is None else feed_url_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _path_or_url(self) -> _Source:
        if (self.path is None) == (self.url is None):
            raise ValueError("give either path (an archive folder) or url (a feed), not both")
        return self


class _Merged(_Strict):
    name: _NAME = "all"
    title: str = "All sources"
    subtitle: str | None = None
    lang: str | None = None
    icon: str | None = None

    _check_lang = field_validator("lang")(_lang)
    _check_icon = field_validator("icon")(_icon_url)


_Format = Annotated[str, Field(pattern=f"^({'|'.join(FORMATS)})$")]


def _formats(v: list[str] | None) -> list[str] | None:
    if v is not None and "atom" not in v:
        raise ValueError("must include 'atom' (archives and the OPML list point at the Atom file)")
    return v


class _Output(_Strict):
    max_entries: Whole = Field(default=100, ge=1, le=10_000)
    merged: _Merged = _Merged()
    formats: list[_Format] = Field(default_factory=lambda: list(FORMATS), min_length=1)
    archive: bool = False  # RFC 5005 archives for every feed
    hub: str | None = None  # WebSub hub

    _check_formats = field_validator("formats")(_formats)

    @field_validator("hub")
    @classmethod
    def _hub_url(cls, v: str | None) -> str | None:
        if v is not None and (problem := web_url_problem(v)):
            raise ValueError(f"must be the absolute http(s) URL of a WebSub hub; {v!r} {problem}")
        return v


class _Filter(_Strict):
    keywords: list[Annotated[str, Field(min_length=1)]] = []
    patterns: list[str] = []
    categories: list[Annotated[str, Field(min_length=1)]] = []

    @field_validator("patterns")
    @classmethod
    def _regex(cls, v: list[str]) -> list[str]:
        for i, pattern in enumerate(v):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"[{i}] {pattern!r} is not a regular expression: {e}") from e
        return v

    def match(self) -> Match:
        return Match(tuple(self.keywords), tuple(self.patterns), tuple(self.categories))


class _Feed(_Strict):
    """A configured output feed."""

    name: _NAME
    title: str
    subtitle: str | None = None
    icon: str | None = None
    link: str | None = None
    lang: str | None = None
    file: str | None = None  # default "<name>.atom"
    sources: list[_NAME] | None = None  # default: every source
    include: _Filter = _Filter()
    exclude: _Filter = _Filter()
    max_age: Duration | None = None
    max_entries: Whole | None = Field(default=None, ge=1, le=10_000)
    script: str | None = None
    formats: list[_Format] | None = Field(default=None, min_length=1)
    archive: bool | None = None

    _check_formats = field_validator("formats")(_formats)
    _check_lang = field_validator("lang")(_lang)
    _check_pages = field_validator("link")(_page_url)
    _check_icon = field_validator("icon")(_icon_url)

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float | None:
        return None if v is None else _seconds(v, MAX_AGE_DAYS)

    @field_validator("script")
    @classmethod
    def _known_script(cls, v: str | None) -> str | None:
        if v is not None and v not in SCRIPTS:
            raise ValueError(f"unknown script {v!r}; known: {', '.join(SCRIPTS)}")
        return v

    @field_validator("file")
    @classmethod
    def _confined(cls, v: str | None) -> str | None:
        if v is not None:
            problem = _file_problem(v)
            if problem:
                raise ValueError(f"{v!r} {problem}")
        return v


def _file_problem(name: str) -> str | None:
    """Why ``name`` may not be a feed's file inside the output folder, or None."""
    path = PurePosixPath(name)
    if "\\" in name or any(ord(c) < 32 for c in name):
        return "has a backslash or a control character; use '/' between folders"
    if path.is_absolute() or name.startswith("~"):
        return "is not relative to output_dir; give a name like 'topics/ukraine.atom'"
    if any(part in ("..", ".") or part.startswith(".") for part in path.parts) or name.endswith(
        "/"
    ):
        return "would leave output_dir or hide the file; no '..', '.' or hidden parts"
    if path.suffix != ".atom":
        return "must end in '.atom' (the RSS and JSON twins take .rss and .json beside it)"
    if path.parts[0] == ARCHIVE_DIR or name in RESERVED_FILES:
        return f"is reserved ({ARCHIVE_DIR}/ holds the archives; {', '.join(RESERVED_FILES)})"
    return None


class _Retention(_Strict):
    max_age_days: Whole = Field(default=0, ge=0, le=MAX_AGE_DAYS)
    max_items_per_source: Whole = Field(default=0, ge=0)


# A host name as RFC 1123 allows it (labels of letters, digits and hyphens), or an IP address.
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def valid_host(v: str) -> str:
    """An address to listen on: an IPv4/IPv6 address or a host name (for --host too)."""
    try:
        ipaddress.ip_address(v)
    except ValueError:
        if not _HOSTNAME.match(v):
            raise ValueError(
                f"{v!r} is not an IP address or host name; e.g. '127.0.0.1', '0.0.0.0', '::1'"
            ) from None
    return v


class _Serve(_Strict):
    host: str = ServeSettings().host
    # 0 asks the system for any free port (the address is printed at start).
    port: Whole = Field(default=ServeSettings().port, ge=0, le=65535)
    access_log: bool = False
    header_timeout: Duration = ServeSettings().header_timeout

    @field_validator("header_timeout", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return _seconds(v, 1)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return valid_host(v)


class _Config(_Strict):
    base_url: str
    output_dir: str = "feeds"
    state_db: str = "state/aggregator.sqlite3"
    workers: Whole = Field(default=0, ge=0, le=64)
    output: _Output = _Output()
    retention: _Retention = _Retention()
    fetch: _Fetch = _Fetch()
    serve: _Serve = _Serve()
    sources: list[_Source] = Field(min_length=1)
    feeds: list[_Feed] = []

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, v: str) -> str:
        """The folder the feeds are published under: file names are appended to it, so it
        can hold no query or fragment. Written as a URI (a path in Chinese percent-encoded)."""
        problem = web_url_problem(v)
        if problem is None:
            parts = urlsplit(v)
            if parts.query or v.endswith("?"):
                problem = f"has a query ('?{parts.query}'); the feeds' names are added to its path"
            elif parts.fragment or "#" in v:
                problem = f"has a fragment ('#{parts.fragment}')"
            elif parts.username is not None:
                problem = "holds a user name; readers must not be sent one"
        if problem:
            raise ValueError(
                f"must be an absolute http(s) URL, of the folder the feeds are published "
                f"under, e.g. 'https://news.example.org/feeds/'; {v!r} {problem}"
            )
        v = as_uri(v)
        return v if v.endswith("/") else v + "/"


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# TOML has types, and the config is read strictly: a value of the wrong one, in our words.
_WRONG_TYPE = {
    "bool_type": "must be true or false, unquoted",
    "int_type": "must be a whole number, unquoted",
    "float_type": "must be a number, unquoted",
    "string_type": "must be text in quotes",
    "list_type": "must be a list, [...]",
    "dict_type": "must be a table, {...} or a [section]",
    "model_type": "must be a table, {...} or a [section]",
}


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at ``loc`` (a key path, list indexes included) may hold."""
    model: Any = _Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        while get_args(model) and not isinstance(model, type):  # list[_Source], X | None
            model = next((a for a in get_args(model) if a is not type(None)), None)
    return list(getattr(model, "model_fields", {}))


def _problems(e: ValidationError) -> list[str]:
    problems = []
    for err in e.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        if err["type"] == "extra_forbidden":
            close = get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1, cutoff=0.6)
            msg = (
                f"unknown key; did you mean {close[0]!r}?"
                if close
                else ("unknown key (check its spelling)")
            )
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] in _WRONG_TYPE:
            msg = f"{_WRONG_TYPE[err['type']]}, not {err['input']!r}"
        problems.append(f"{_key_path(loc)}: {msg}")
    return problems


# Characters XML 1.0 cannot hold (a TOML escape like "\u0001" writes one): a title holding one
# would stop its feeds from being written.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _unwritable(value: Any, where: str = "") -> Iterator[str]:
    """Key paths of strings that no feed or HTTP request could carry: control characters
    anywhere, and anything but printable ASCII in a header (user_agent, headers)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unwritable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unwritable(item, f"{where}[{i}]")
    elif isinstance(value, str):
        header = where.endswith("user_agent") or ".headers." in f".{where}"
        if _CONTROL.search(value):
            yield f"{where}: {value!r} holds a control character; remove it"
        elif header and not (value.isascii() and value.isprintable()):
            yield f"{where}: {value!r} is sent as an HTTP header: printable ASCII only"


def _cross_checks(raw: _Config) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, s in enumerate(raw.sources):
        if s.name in seen:
            problems.append(
                f"sources[{i}].name: {s.name!r} is already used by sources[{seen[s.name]}]"
            )
        seen.setdefault(s.name, i)
        if s.name == raw.output.merged.name:
            problems.append(
                f"sources[{i}].name: {s.name!r} is the merged feed's name (output.merged.name)"
            )
    names = {raw.output.merged.name: "output.merged.name"}
    names.update({s.name: f"sources[{i}]" for i, s in reversed(list(enumerate(raw.sources)))})
    files = {f"{name}.atom": where for name, where in names.items()}
    for i, f in enumerate(raw.feeds):
        if f.name in names:
            problems.append(f"feeds[{i}].name: {f.name!r} is already used by {names[f.name]}")
        names.setdefault(f.name, f"feeds[{i}]")
        for j, name in enumerate(f.sources or ()):
            if name not in seen:
                known = ", ".join(s.name for s in raw.sources)
                problems.append(f"feeds[{i}].sources[{j}]: no source {name!r}; known: {known}")
        file = f.file or f"{f.name}.atom"
        stem = file.removesuffix(".atom").casefold()
        other = next(
            (w for k, w in files.items() if k.removesuffix(".atom").casefold() == stem), None
        )
        if other is not None:
            problems.append(f"feeds[{i}].file: {file!r} is already written by {other}")
        files.setdefault(file, f"feeds[{i}]")
    return problems


def load(path: Path = DEFAULT_CONFIG, text: str | None = None) -> Config:
    """The configuration in ``path`` (or ``text``, as if it were the file's); ConfigError
    listing every problem by key path."""
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
        # A byte order mark, as Windows Notepad saves UTF-8, is no part of the TOML.
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path}: no such file; pass --config PATH or create it (see README.md)"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    unwritable = tuple(_unwritable(data))
    if unwritable:
        raise ConfigError(f"{path}: {len(unwritable)} problem(s)", unwritable)
    try:
        raw = _Config.model_validate(data)
    except ValidationError as e:
        problems = tuple(_problems(e))
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from e
    problems = tuple(_cross_checks(raw))
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    config = _build(raw, path.resolve().parent, path)
    problems = tuple(_overlaps(config))
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return replace(config, digest=text_digest(text))


def _overlaps(config: Config) -> Iterator[str]:
    """An archive folder that would read what the tool writes (a feed file, the state
    database) as articles, skipped on every run (and ``run --strict`` failing for ever): a
    file written inside it, under no hidden folder, that its include patterns take."""
    out = config.output_dir.resolve()
    written = [out / "feeds.opml", out / "feed.xsl"]
    for f in config.feeds:
        written += [out / filename(f, fmt) for fmt in f.formats]
        written += [out / "archive" / f.name / "1.atom"] if f.archive else []
    db = config.state_db.resolve()
    state = [db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")]
    for i, s in enumerate(config.sources):
        if s.path is None or not s.path.is_dir():
            continue
        folder = s.path.resolve()
        taken = partial(takes, folder, s.include)
        if first := next(filter(taken, written), None):
            yield (
                f"output_dir: {first} is written inside sources[{i}].path ({folder}), which "
                "would read the feeds as articles; keep output_dir and the archive folders "
                "apart (or leave the feeds out by the source's include patterns)"
            )
        if any(map(taken, state)):
            yield (
                f"state_db: {db} is inside sources[{i}].path ({folder}), which would read the "
                "database as articles; put state_db elsewhere"
            )


def text_digest(text: str) -> str:
    """What tells one config.toml's text from another (``Config.digest``)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _absolute(base_url: str, icon: str | None) -> str | None:
    return as_uri(urljoin(base_url, icon)) if icon is not None else None


def _homepage(s: _Source) -> str | None:
    if s.homepage:
        return s.homepage
    profile = ADAPTERS.get(s.adapter)
    return profile.homepage if profile is not None and profile.hosts else None


_POLICY_KEYS = (
    "interval", "cron", "timeout", "user_agent", "max_items", "max_bytes", "max_redirects",
    "allow_private",
)  # fmt: skip


def _policy(s: _Source, defaults: _Fetch, base_url: str) -> FetchPolicy:
    """The source's own settings over [fetch]'s over the built-in defaults. The default user
    agent names where the feeds are published, so a site's operator can see who polls it."""
    values: dict[str, Any] = {"user_agent": f"aggregator/{__version__} (+{base_url})"}
    for layer in (defaults, s):
        values.update({k: getattr(layer, k) for k in _POLICY_KEYS if getattr(layer, k) is not None})
    if s.interval is not None and s.cron is None:
        values.pop("cron", None)  # the source's own interval over a cron line from [fetch]
    headers = {**(defaults.headers or {}), **(s.headers or {})}
    return FetchPolicy(**values, headers=tuple(sorted(headers.items())))


def _build(raw: _Config, root: Path, path: Path) -> Config:
    sources = tuple(
        Source(
            name=s.name,
            title=s.title or s.name,
            path=(root / s.path).resolve() if s.path is not None else None,
            url=s.url,
            policy=_policy(s, raw.fetch, raw.base_url),
            adapter=s.adapter,
            include=tuple(s.include),
            lang=s.lang,
            author=s.author,
            homepage=_homepage(s),
            icon=_absolute(raw.base_url, s.icon),
        )
        for s in raw.sources
    )
    limit = raw.output.max_entries
    merged = raw.output.merged
    formats = tuple(raw.output.formats)
    archive = raw.output.archive
    feeds = (
        FeedSpec(
            name=merged.name,
            filename=f"{merged.name}.atom",
            title=merged.title,
            subtitle=merged.subtitle,
            sources=tuple(s.name for s in sources),
            lang=merged.lang,
            icon=_absolute(raw.base_url, merged.icon),
            max_entries=limit,
            formats=formats,
            archive=archive,
        ),
        *(
            FeedSpec(
                name=s.name,
                filename=f"{s.name}.atom",
                title=s.title,
                sources=(s.name,),
                lang=s.lang,
                link=s.homepage,
                icon=_absolute(raw.base_url, s.icon),
                max_entries=limit,
                formats=formats,
                archive=archive,
            )
            for s in sources
        ),
        *(
            FeedSpec(
                name=f.name,
                filename=f.file or f"{f.name}.atom",
                title=f.title,
                sources=tuple(f.sources) if f.sources else tuple(s.name for s in sources),
                subtitle=f.subtitle,
                lang=f.lang or f.script,
                link=f.link,
                icon=_absolute(raw.base_url, f.icon),
                max_entries=f.max_entries or limit,
                formats=tuple(f.formats) if f.formats else formats,
                include=f.include.match(),
                exclude=f.exclude.match(),
                max_age=f.max_age,
                script=f.script,
                archive=archive if f.archive is None else f.archive,
            )
            for f in raw.feeds
        ),
    )
    return Config(
        base_url=raw.base_url,
        output_dir=(root / raw.output_dir).resolve(),
        state_db=(root / raw.state_db).resolve(),
        sources=sources,
        feeds=feeds,
        retention=Retention(raw.retention.max_age_days, raw.retention.max_items_per_source),
        workers=raw.workers,
        path=path.resolve(),
        concurrency=raw.fetch.concurrency,
        per_host=raw.fetch.per_host,
        hub=raw.output.hub,
        serve=ServeSettings(
            raw.serve.host, raw.serve.port, raw.serve.access_log, raw.serve.header_timeout
        ),
    )


def check_paths(config: Config) -> list[str]:
    """Problems a run would meet on disk, by key path (for ``aggregator check``)."""
    problems = []
    for i, s in enumerate(config.sources):
        if s.path is not None and not s.path.exists():
            problems.append(f"sources[{i}].path: {s.path} does not exist")
    if config.output_dir.exists() and not config.output_dir.is_dir():
        problems.append(
            f"output_dir: {config.output_dir} is a file, not a folder; name a folder for the feeds"
        )
    if config.state_db.is_dir():
        problems.append(
            f"state_db: {config.state_db} is a folder; name the database file, "
            "e.g. 'state/aggregator.sqlite3'"
        )
    # A folder inside output_dir may be a symbolic link that leads out of it.
    root = config.output_dir.resolve()
    defaults = 1 + len(config.sources)
    for i, spec in enumerate(config.feeds[defaults:]):
        target = (config.output_dir / spec.filename).resolve()
        if not target.is_relative_to(root):
            problems.append(
                f"feeds[{i}].file: {spec.filename!r} leads to {target}, outside output_dir "
                f"({root}) through a symbolic link"
            )
    return problems


def append_sources(path: Path, sources: list[tuple[str, str, str, str | None]]) -> None:
    """Add ``[[sources]]`` tables (name, title, url, homepage) at the end of the config file,
    keeping its text and comments as they are. The new text is checked first (ConfigError,
    the file untouched, if it is not a valid configuration), then written (``_extend``)."""
    import json

    def quoted(value: str) -> str:
        # A JSON string is a TOML basic string, escapes included, but for DEL (U+007F), which
        # JSON leaves as it is and TOML refuses: one in an outline's title made the whole
        # import fail, blamed on the file's `sources`.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")

    before = path.read_text(encoding="utf-8")
    blocks = []
    for name, title, url, homepage in sources:
        lines = [
            "[[sources]]",
            f"name = {quoted(name)}",
            f"title = {quoted(title)}",
            f"url = {quoted(url)}",
            'adapter = "auto"',
        ]
        if homepage:
            lines.append(f"homepage = {quoted(homepage)}")
        blocks.append("\n".join(lines) + "\n")
    added = (
        ("\n" if before and not before.endswith("\n") else "")
        + "\n# Added by `aggregator opml import`.\n"
        + "\n".join(blocks)
    )
    try:
        tomllib.loads(before + added)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path}: cannot add [[sources]] tables at its end, where its own `sources` is "
            "written another way (an inline array, sources = [...]?); write each source as a "
            "[[sources]] table, or add the new ones by hand"
        ) from e
    load(path, before + added)
    _extend(path.resolve(), before, added)  # (a symbolic link is followed, and kept)


def _extend(target: Path, before: str, added: str) -> None:
    """``target`` (which holds ``before``) with ``added`` at its end: replaced in one rename by
    a file with its permissions and owner, so that no reader ever sees half of it; or, where
    it cannot be replaced so (a file bind-mounted into a container, a folder this user cannot
    write, a file with other hard links, an owner this user cannot give), appended to in
    place, which leaves ``before`` whole whatever happens."""
    import tempfile

    st = target.stat()
    if st.st_nlink == 1:
        tmp = None
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            tmp = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                made = os.fstat(fd)
                if (made.st_uid, made.st_gid) != (st.st_uid, st.st_gid):
                    os.fchown(fd, st.st_uid, st.st_gid)
                f.write(before + added)
                f.flush()
                os.fsync(fd)
            tmp.replace(target)
            return
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EBUSY, errno.EXDEV):
                raise
        finally:
            if tmp is not None:  # (after the rename there is nothing left to remove)
                with contextlib.suppress(OSError):
                    tmp.unlink()
    with target.open("a", encoding="utf-8") as f:
        f.write(added)
        f.flush()
        os.fsync(f.fileno())
