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
        part = path.with_name(f".identity.key.{os.getpid()}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:  # whole or not at all; a concurrent creator's key wins
            os.link(part, path)
        except FileExistsError:
            pass
        finally:
            part.unlink()
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise ValueError(f"{path} holds no key: restore it from a backup (digests made with it are unfindable)")
    return key


def person_digest(number: str) -> str:
    return hmac.new(_key(), number.strip().upper().encode(), hashlib.sha256).hexdigest()
