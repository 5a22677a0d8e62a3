"""Secrets the service must read back (webhook signing secrets), encrypted at rest.

A hash cannot sign, so such secrets are stored as Fernet tokens (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under a key derived with HKDF-SHA256 from ``CORP_ASTRO_SECRET_KEY``, or, when
that is unset, from a random key generated once into ``<data dir>/secret-key`` (as the JWT secret is).
Losing the key loses the stored secrets (endpoints then need ``rotate-secret``); keep it with backups.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "file_secret", "secret_key"]

_INFO = b"corp-astro secrets at rest v1"


def file_secret(path: Path) -> str:
    """The secret in ``path``, generated there first (mode 0600) when missing.

    ``link`` is atomic and fails if the file exists, so the first of two racing processes wins and
    nobody reads a half-written secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def secret_key(data_dir: Path) -> str:
    """``CORP_ASTRO_SECRET_KEY``, else the key generated once under ``data_dir``."""
    return os.environ.get("CORP_ASTRO_SECRET_KEY") or file_secret(data_dir / "secret-key")


class SecretBox:
    """Encrypts and decrypts short secrets with a key derived from ``key`` (any high-entropy string)."""

    def __init__(self, key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        """The stored form of ``secret`` (ASCII, about 120 characters more than the secret)."""
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        """The secret of a stored token; ``ValueError`` if it was sealed under another key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("the secret was encrypted with another key") from exc
