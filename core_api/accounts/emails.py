"""The one normal form of an email address, used for storage, lookup, uniqueness and throttle keys.

NFKC first (fullwidth letters and decomposed accents become their plain forms), then ``casefold()``
(``İ``, ``ß`` and other letters whose lower case is longer than one character compare as
PostgreSQL never would with ``lower()``), then IDNA (UTS #46) for a non-ASCII domain, so that
``bücher.example`` and ``xn--bcher-kva.example`` are one domain. Two spellings that normalise alike are
one account; nothing else is compared, so no spelling gets a guess budget of its own.
"""

from __future__ import annotations

import unicodedata

import idna

__all__ = ["normalize_email"]

MAX_EMAIL = 255


def _refused(ch: str) -> bool:
    # Control (Cc) and format (Cf: zero-width space/joiner, bidi marks) characters let two addresses
    # look identical on screen, and have no place in a real address.
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def normalize_email(raw: str) -> str:
    """The normal form of ``raw``; raises ``ValueError`` when it is not a plausible address."""
    text = unicodedata.normalize("NFKC", raw.strip()).casefold()
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or "@" in local or any(_refused(ch) for ch in text):
        raise ValueError("`email` is not a valid email address")
    if not domain.isascii() or "xn--" in domain:
        # A-labels are checked too: ``xn--bcher-kva`` must decode to the U-label it stands for.
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
            idna.decode(domain)
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError("`email` has a domain that is not a valid internationalised name") from exc
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise ValueError("`email` is not a valid email address")
    email = f"{local}@{domain}"
    if len(email) > MAX_EMAIL:
        raise ValueError(f"`email` is longer than {MAX_EMAIL} characters once normalised")
    return email
