"""Secrets out of everything we print: config, health, errors and logs all pass through `redact`.

A URL can carry a secret in three places: its userinfo (`user:password@`, or a bare token `token@`), its
query (`?password=`, `?token=`...), and for SQLCipher the passphrase as userinfo (`sqlite+pysqlcipher://:pw@/f`).
"""

from __future__ import annotations

import re

MASK = "***"
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")
_SECRET_QUERY = re.compile(
    r"(?P<key>(?:^|[?&;])(?:password|passwd|pwd|pass|passphrase|key|api_key|apikey|token|access_token|"
    r"auth|secret|sig|signature|cipher_key|sslpassword)=)(?P<value>[^&;#]*)",
    re.IGNORECASE,
)


def _redact_url(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    authority_end = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            authority_end = min(authority_end, pos)
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        authority = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
    tail = _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, tail)
    return scheme + authority + tail


def redact(text: str) -> str:
    """`text` with every credential inside any URL replaced by ***."""
    return _URL.sub(_redact_url, text)


def mask_secret(value: str) -> str:
    """A secret setting as `pipeline config` shows it: a URL keeps its scheme and host, anything else is ***."""
    match = _URL.fullmatch(value.strip())
    if not match:
        return MASK
    redacted = redact(value.strip())
    scheme, rest = redacted.split("://", 1)
    host = rest.split("/", 1)[0].split("?", 1)[0]
    if scheme.startswith("sqlite"):
        return redacted  # a file path, with any passphrase already masked
    return f"{scheme}://{host}/{MASK}" if "/" in rest or "?" in rest else f"{scheme}://{host}"
