"""X handles: validated once, compared case-insensitively, stored in one canonical (lowercase) form.

X's rules: 1 to 15 ASCII letters, digits or underscores. `Alice` and `alice` are the same account on X, so
they are the same account here; a fullwidth, accented or path-like handle (`../../x`) is refused before it
can name a file or a row.
"""

from __future__ import annotations

import re

_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")


class HandleError(ValueError):
    """Not an X handle; the message names the field, the value and the rule."""


def canonical_handle(raw: object, field: str = "account") -> str:
    """`@Alice` -> `alice`; anything that is not an X handle raises HandleError naming `field`."""
    if not isinstance(raw, str):
        raise HandleError(f"{field} must be a text handle such as alice, not {type(raw).__name__}")
    handle = raw[1:] if raw.startswith("@") else raw
    if not _HANDLE.fullmatch(handle):
        raise HandleError(
            f"{field} {raw!r} is not an X handle: use 1 to 15 ASCII letters, digits or _ (such as alice_42)"
        )
    return handle.lower()
