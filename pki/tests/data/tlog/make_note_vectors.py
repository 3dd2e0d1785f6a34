#!/usr/bin/env python3
"""Signed-note vectors made by an independent implementation (Python's `cryptography`), for
the signature conventions lienthong checkpoints and cosignatures use (see
pki/src/tlog/signing.rs): the C2SP types 0x01 (Ed25519 note), 0x02 (ECDSA note, as
transparency-dev/formats verifies it) and 0x04 (Ed25519 cosignature), and lienthong's 0xff
types (RSA-PSS note, ECDSA and RSA-PSS cosignatures).

    python3 make_note_vectors.py > note-vectors.json

Ed25519 is deterministic: lienthong must reproduce those lines byte for byte from the same
key. ECDSA and RSA-PSS are randomised: lienthong must verify them.
"""
import base64
import hashlib
import json
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

ORIGIN = "lienthong.gov.vn/log/000.01.41.H49"
WITNESS = "lienthong.gov.vn/witness/000.00.41.H49"
ROOT = hashlib.sha256(b"lienthong test vector root").digest()
BODY = f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
TIME = 1795000000  # 2026-11-18 UTC


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()[:4]


def line(name: str, kid: bytes, sig: bytes) -> str:
    return f"— {name} {b64(kid + sig)}\n"


def spki(public) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pkcs8(private) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def cosigned_message() -> bytes:
    return f"cosignature/v1\ntime {TIME}\n".encode() + BODY.encode()


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
vectors = {"body": BODY, "time": TIME, "cases": []}

ed = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"lienthong ed25519 seed").digest())
ed_raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
vectors["cases"].append({
    "what": "Ed25519 checkpoint signature (type 0x01), deterministic",
    "pkcs8": b64(pkcs8(ed)), "spki": b64(spki(ed.public_key())),
    "note": BODY + "\n" + line(ORIGIN, key_id(ORIGIN.encode(), b"\n\x01", ed_raw), ed.sign(BODY.encode())),
})
stamp = struct.pack(">Q", TIME)
vectors["cases"].append({
    "what": "Ed25519 cosignature (type 0x04), deterministic",
    "pkcs8": b64(pkcs8(ed)), "spki": b64(spki(ed.public_key())),
    "note": BODY + "\n" + line(WITNESS, key_id(WITNESS.encode(), b"\n\x04", ed_raw),
                               stamp + ed.sign(cosigned_message())),
})

p256 = ec.derive_private_key(int.from_bytes(hashlib.sha256(b"lienthong p256").digest(), "big") % (2**255),
                             ec.SECP256R1())
p256_spki = spki(p256.public_key())
vectors["cases"].append({
    "what": "ECDSA P-256 checkpoint signature (type 0x02)",
    "spki": b64(p256_spki),
    "note": BODY + "\n" + line(ORIGIN, key_id(p256_spki), p256.sign(BODY.encode(), ec.ECDSA(hashes.SHA256()))),
})
vectors["cases"].append({
    "what": "ECDSA P-256 cosignature (0xff lienthong.gov.vn/cosignature/ecdsa-sha256)",
    "spki": b64(p256_spki),
    "note": BODY + "\n" + line(WITNESS, key_id(WITNESS.encode(), b"\n\xff",
                                               b"lienthong.gov.vn/cosignature/ecdsa-sha256", p256_spki),
                               stamp + p256.sign(cosigned_message(), ec.ECDSA(hashes.SHA256()))),
})

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa_spki = spki(rsa_key.public_key())
vectors["cases"].append({
    "what": "RSA-PSS checkpoint signature (0xff lienthong.gov.vn/note/rsa-pss-sha256)",
    "spki": b64(rsa_spki),
    "note": BODY + "\n" + line(ORIGIN, key_id(ORIGIN.encode(), b"\n\xff", b"lienthong.gov.vn/note/rsa-pss-sha256",
                                              rsa_spki), rsa_key.sign(BODY.encode(), PSS, hashes.SHA256())),
})
vectors["cases"].append({
    "what": "RSA-PSS cosignature (0xff lienthong.gov.vn/cosignature/rsa-pss-sha256)",
    "spki": b64(rsa_spki),
    "note": BODY + "\n" + line(WITNESS, key_id(WITNESS.encode(), b"\n\xff",
                                               b"lienthong.gov.vn/cosignature/rsa-pss-sha256", rsa_spki),
                               stamp + rsa_key.sign(cosigned_message(), PSS, hashes.SHA256())),
})
print(json.dumps(vectors, indent=1, ensure_ascii=False))
