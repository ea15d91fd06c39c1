"""Any other outlet in the mirror-archive or front-matter format: title, link, date and body,
with the generic cleaning rules only. The outlet shown as author is the article link's host
(``www.rfi.fr`` -> ``rfi.fr``) unless the source sets ``author`` in config.toml.
"""

from urllib.parse import urlsplit

from aggregator.adapters.base import Profile


class GenericProfile(Profile):
    def author_for(self, link: str | None) -> tuple[str, str]:
        parts = urlsplit(link) if link else None
        if parts is None or not parts.hostname:
            return self.outlet, self.homepage
        name = parts.hostname.removeprefix("www.")
        return name, f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"  # its scheme and port


PROFILE = GenericProfile(
    key="generic",
    outlet="Unknown outlet",
    homepage="https://example.invalid/",
    description="any other outlet in the same archive or front-matter format; generic cleaning only",
    lang="zh",
    tz="UTC",
)
