"""Signing keys made in the test, their JWKS file, and JWTs signed with them (RS256, ES256),
as an identity provider would issue them to callers of the gateway."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    """A private key and the public half as a JWK."""

    kid: str
    alg: str  # "RS256" or "ES256"
    private: Any

    @classmethod
    def make(cls, kid: str, alg: str) -> SigningKey:
        if alg == "RS256":
            return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if alg == "ES256":
            return cls(kid, alg, ec.generate_private_key(ec.SECP256R1()))
        raise ValueError(f"unsupported algorithm {alg}")

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        if self.alg == "RS256":
            return {"kty": "RSA", "kid": self.kid, "alg": self.alg, "use": "sig",
                    "n": _uint(numbers.n), "e": _uint(numbers.e)}
        return {"kty": "EC", "kid": self.kid, "alg": self.alg, "use": "sig", "crv": "P-256",
                "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}

    def sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # JWS wants ES256 signatures as the raw 32-byte r and s, not DER.
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [key.jwk() for key in keys]}))
    return path


def mint(key: SigningKey, *, issuer: str, audience: str, subject: str = "tester",
         lifetime_s: int = 600, kid: str | None = None) -> str:
    """A compact JWT; a negative `lifetime_s` gives one that has already expired. `kid`
    overrides the header's key id (a token signed by one key that claims another)."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": key.alg, "typ": "JWT", "kid": kid or key.kid}).encode())
    claims = _b64(json.dumps({"iss": issuer, "aud": audience, "sub": subject, "iat": now,
                              "exp": now + lifetime_s}).encode())
    signing_input = f"{header}.{claims}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"
