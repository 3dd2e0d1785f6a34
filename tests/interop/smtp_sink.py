#!/usr/bin/env python3
"""A real SMTP server for lienthong's mail tests: aiosmtpd on a loopback address.

Every message accepted is written to OUT as NNN.eml (the bytes as received) and NNN.json:
the envelope, whether the session used TLS and who authenticated, and the message as Python's
`email` package decodes it (an implementation independent of lettre, which encoded it).

    smtp_sink.py --port 2525 --out DIR [--tls none|starttls|implicit --cert C --key K]
                 [--user U --password P] [--reject TEXT]

Prints "READY <port>" once it accepts connections, then serves until killed. Exits with
status 3 when aiosmtpd is missing (the Rust harness turns that into an install hint).
"""

import argparse
import email
import json
import os
import signal
import ssl
import sys
import threading
import time
from email import policy

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:
    print("aiosmtpd is not installed", file=sys.stderr)
    sys.exit(3)


class Sink:
    """Saves every message; numbering continues across restarts on the same directory."""

    def __init__(self, out, reject):
        self.out = out
        self.reject = reject
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _next_name(self):
        with self.lock:
            n = len([f for f in os.listdir(self.out) if f.endswith(".json")]) + 1
            while os.path.exists(os.path.join(self.out, "%04d.json" % n)):
                n += 1
            return "%04d" % n

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        decoded = email.message_from_bytes(raw, policy=policy.default)
        undecoded = email.message_from_bytes(raw, policy=policy.compat32)
        ssl_object = server.transport.get_extra_info("ssl_object")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": ssl_object.version() if ssl_object is not None else None,
            "authenticated_as": (
                session.auth_data.login.decode("utf-8", "replace")
                if isinstance(session.auth_data, LoginPassword)
                else None
            ),
            "raw_is_ascii": all(b < 128 for b in raw),
            "subject": str(decoded["subject"]),
            "raw_subject": str(undecoded["subject"]),
            "from": str(decoded["from"]),
            "to": [str(a) for a in decoded["to"].addresses] if decoded["to"] else [],
            "message_id": str(decoded["message-id"]),
            "date": str(decoded["date"]),
            "content_type": decoded.get_content_type(),
            "charset": decoded.get_content_charset(),
            "transfer_encoding": str(decoded["content-transfer-encoding"]),
            "auto_submitted": str(decoded["auto-submitted"]),
            "notification": str(decoded["x-lienthong-notification"]),
            # Decoded, with the wire's CRLF line ends as a reader sees them.
            "body": decoded.get_content().replace("\r\n", "\n"),
        }
        name = self._next_name()
        with open(os.path.join(self.out, name + ".eml"), "wb") as f:
            f.write(raw)
        tmp = os.path.join(self.out, name + ".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.replace(tmp, os.path.join(self.out, name + ".json"))
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--reject", help="refuse recipients containing this text with 550")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    kwargs = {}
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)
    if args.user is not None:

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == args.user
                and auth_data.password.decode() == args.password
            )
            return AuthResult(success=ok, auth_data=auth_data if ok else None)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS; an implicit TLS session is TLS throughout.
            auth_require_tls=args.tls == "starttls",
        )

    controller = Controller(
        Sink(args.out, args.reject),
        hostname=args.host,
        port=args.port,
        server_hostname="localhost",
        ready_timeout=10,
        **kwargs,
    )
    controller.start()
    print("READY %d" % args.port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    controller.stop()


if __name__ == "__main__":
    main()
