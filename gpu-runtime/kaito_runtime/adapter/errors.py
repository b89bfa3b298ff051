"""Errors of `kaito-adapter`.

AdapterError            base: a message and a hint, rendered on one line          exit 1
├── UsageError          bad arguments: image reference, docker config file        exit 2
├── AdapterDirError     the directory is not a complete adapter (push) or the
│                       image does not contain one (pull)                         exit 3
├── RegistryError       the registry cannot be used                               exit 4
│   ├── UnreachableError   nothing answers, DNS fails, timeouts
│   ├── TLSError           TLS mismatch or an untrusted certificate
│   └── AuthError          missing, wrong or insufficient credentials             exit 5
├── NotFoundError       the tag, digest or repository does not exist              exit 6
└── IntegrityError      a blob or manifest does not match its digest              exit 7
"""

from __future__ import annotations


class AdapterError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UsageError(AdapterError):
    exit_code = 2


class AdapterDirError(AdapterError):
    exit_code = 3


class RegistryError(AdapterError):
    exit_code = 4


class UnreachableError(RegistryError):
    pass


class TLSError(RegistryError):
    pass


class AuthError(RegistryError):
    exit_code = 5


class NotFoundError(AdapterError):
    exit_code = 6


class IntegrityError(AdapterError):
    exit_code = 7
