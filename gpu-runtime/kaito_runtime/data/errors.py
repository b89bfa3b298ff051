"""Errors of `kaito-data fetch`.

    FetchError           a download failed (network, HTTP status, size cap, empty body)       exit 1
    ├── InvalidURLError  the URL itself is unusable (scheme, no file name, duplicate name)    exit 2
    └── RefusedError     the SSRF policy refused the host or an address it resolves to,
                         before DNS, after DNS, or on a redirect                               exit 3

Every error carries the URL it concerns and a hint, so the CLI can print one clear line per failure.
"""

from __future__ import annotations


class FetchError(Exception):
    """A URL could not be downloaded."""

    exit_code = 1

    def __init__(self, url: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"{self.url}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class RefusedError(FetchError):
    """The SSRF policy refused the URL's host or one of the addresses it resolves to."""

    exit_code = 3


class InvalidURLError(FetchError):
    """The URL cannot be fetched at all; detected before any network traffic."""

    exit_code = 2
