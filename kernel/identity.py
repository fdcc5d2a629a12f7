"""A person's identity number, kept only as a keyed digest: the same number always
gives the same digest on one installation (so their record is found by it), and the
digest alone does not give the number back (the key is not in the database)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from kernel.settings import get_settings


def _key() -> bytes:
    path = get_settings().home / "identity.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # created once, readable by its owner only; a concurrent creator wins
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def person_digest(number: str) -> str:
    return hmac.new(_key(), number.strip().upper().encode(), hashlib.sha256).hexdigest()
