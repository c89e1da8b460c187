"""The host's long-term Ed25519 key: a raw 32-byte seed in a 0600 file."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..keyfile import read_secret_file, write_secret_file

HOST_KEY_FILE = "host-ed25519.key"


def load_or_create_host_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        seed = read_secret_file(path)
        if len(seed) != 32:
            raise ValueError(f"{path} must hold a raw 32-byte Ed25519 seed, not {len(seed)} bytes")
        return Ed25519PrivateKey.from_private_bytes(seed)
    key = Ed25519PrivateKey.generate()
    write_secret_file(path, key.private_bytes_raw())
    return key


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
