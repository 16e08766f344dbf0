"""Checks of configuration values: the names Kafka and OpenSearch accept, URLs and their
hosts, credentials written into a URL, and secrets masked for showing.

A leaf: pure functions of strings, which the settings' validators call.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

#: What Kafka accepts in a topic name (and at most 249 of them).
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: What OpenSearch refuses in an index name, besides upper case.
_INDEX_FORBIDDEN = set('\\/*?"<>| ,#:')


def topic_name(value: str) -> str:
    if not _TOPIC.match(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a Kafka topic name: use 1 to 249 of the letters a-z, A-Z, "
            "digits, '.', '_' and '-'"
        )
    return value


def index_prefix(value: str) -> str:
    bad = sorted({c for c in value if c in _INDEX_FORBIDDEN})
    if (
        not value
        or value != value.lower()
        or bad
        or value[0] in "-_+."
        # the daily indices append "-YYYY.MM.DD": 255 bytes in all at most
        or len(value.encode()) > 255 - len("-YYYY.MM.DD")
    ):
        shown = f" (it has {' '.join(repr(c) for c in bad)})" if bad else ""
        raise ValueError(
            f"{value!r} cannot start an OpenSearch index name{shown}: use lower case, no "
            'spaces or any of \\ / * ? " < > | , # :, not starting with - _ + or .'
        )
    return value


def http_url(value: str) -> str:
    """`value` as an http(s) URL without a trailing slash (https if it names no scheme)."""
    value = value.strip()
    if "://" not in value:
        value = f"https://{value}"
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as exc:
        raise ValueError(f"{masked_url(value)!r} is not a URL: {exc}") from None
    value = urlunsplit(parts._replace(path=parts.path.rstrip("/")))
    if parts.scheme not in ("http", "https") or not parts.hostname or not host_name(parts.hostname):
        raise ValueError(
            f"{masked_url(value)!r} is not an http(s) URL with a host, "
            "such as https://search.example.com:9200"
        )
    if port == 0:
        raise ValueError(f"{masked_url(value)!r} names port 0")
    return value


def host_name(host: str) -> bool:
    """Whether `host` is an IP address or a name DNS can carry (IDNA for other scripts)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    ascii_name = host
    if not host.isascii():
        # As the HTTP client encodes it (IDNA 2008, which the `idna` package implements and
        # urllib3 uses); without that package a name must be given in its ASCII form.
        try:
            import idna  # noqa: PLC0415

            ascii_name = idna.encode(host.lower(), strict=True, std3_rules=True).decode("ascii")
        except (ImportError, UnicodeError, ValueError):
            return False
    return re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?", ascii_name) is not None


def masked_url(url: str) -> str:
    """`url` with any password in it replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def credentials_from_url(data: Any) -> Any:
    """Move `user:password@` out of a section's `url` into its `username` and `password`,
    so that the URL can be printed and the password stays a secret."""
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return data
    url = data["url"] if "://" in data["url"] else f"https://{data['url']}"
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return data  # the url validator says what is wrong with it
    if username is None and password is None:
        return data
    if data.get("username") is not None or data.get("password") is not None:
        raise ValueError(
            f"credentials are given both in the url ({masked_url(url)}) and as username/password: "
            "set them in one place"
        )
    host = parts.netloc.rpartition("@")[2]
    return {
        **data,
        "url": urlunsplit(parts._replace(netloc=host)),
        "username": unquote(username or ""),
        "password": None if password is None else unquote(password),
    }


#: Parts of librdkafka property names whose values are secrets (`sasl.password`,
#: `ssl.key.password`, `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...).
_SECRET_PROPERTY_PARTS = ("password", "secret", "key.pem", "ssl_key", "oauthbearer.config", "token")
MASK = "**********"


def masked_properties(properties: dict[str, str]) -> dict[str, str]:
    """librdkafka properties with the values of secret ones masked, for showing."""
    return {
        key: MASK if any(part in key.lower() for part in _SECRET_PROPERTY_PARTS) else value
        for key, value in properties.items()
    }


def loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
