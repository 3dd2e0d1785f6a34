#!/usr/bin/env python3
"""Independent check of a lienthong envelope with pycose (a COSE implementation we do not
write), signature by signature, each with the public key of the leaf certificate carried in
that signature's x5chain header.

Usage: pycose_verify.py BUNDLE.ltd|ENVELOPE.cose
Prints one line per signature ("signature N: ok (ES256, CN=...)") and exits 0 only if every
signature verifies; exits 1 on any failure, 2 when pycose is not installed.
"""
import sys
import zipfile

try:
    from pycose.messages import CoseMessage, SignMessage
    from pycose.keys import EC2Key, OKPKey, RSAKey
    from pycose.keys.curves import P256, Ed25519
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives import serialization
except ImportError as e:  # the test must fail loudly, never skip
    print(f"pycose is not installed ({e}); run: pip install pycose 'cbor2<6'", file=sys.stderr)
    sys.exit(2)

X5CHAIN = 33


def header_value(header, label):
    for key, value in header.items():
        ident = key if isinstance(key, int) else getattr(key, "identifier", None)
        if ident == label:
            return value
    return None


def cose_key(cert):
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        return EC2Key(crv=P256, x=nums.x.to_bytes(32, "big"), y=nums.y.to_bytes(32, "big"))
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return OKPKey(crv=Ed25519, x=raw)
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        return RSAKey(n=n, e=e)
    raise ValueError(f"unsupported key type {type(pub)}")


def main(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            data = bundle.read("META-INF/envelope.cose")
    else:
        data = open(path, "rb").read()
    msg = CoseMessage.decode(data)
    if not isinstance(msg, SignMessage):
        print(f"not a COSE_Sign message: {type(msg).__name__}")
        return 1
    if not msg.signers:
        print("no signatures")
        return 1
    failures = 0
    for i, signer in enumerate(msg.signers, start=1):
        chain = header_value(signer.phdr, X5CHAIN)
        if chain is None:
            print(f"signature {i}: no x5chain")
            failures += 1
            continue
        leaf_der = chain if isinstance(chain, bytes) else chain[0]
        cert = x509.load_der_x509_certificate(leaf_der)
        signer.key = cose_key(cert)
        alg_value = header_value(signer.phdr, 1)
        alg = getattr(alg_value, "fullname", alg_value)
        ok = signer.verify_signature()
        subject = cert.subject.rfc4514_string()
        print(f"signature {i}: {'ok' if ok else 'FAILED'} ({alg}, {subject})")
        if not ok:
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
