"""The SMTP server of the delivery tests (aiosmtpd), on loopback.

Listens on four ports, each picked by the system:
- starttls: STARTTLS required before anything else, then AUTH PLAIN or
  LOGIN with the test user required;
- implicit: TLS from the first byte, AUTH required;
- plain: no TLS, no AUTH;
- wrong_name: like starttls, with a certificate for another host name
  (from the same CA), which a client must refuse.

Every accepted message is written to the mail directory as <id>.eml, the
bytes as received, next to <id>.json with the envelope and the session
(sender, recipients, TLS or not, the user that logged in). Recipients
whose local part is `tempfail` get 451, `permfail` 550. When listening,
the ports are written to the ready file as KEY=PORT lines.

Started by scripts/databases.sh (loupe_start_smtp); runs until killed.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import time
import uuid
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Mailbox:
    """Accepts messages into a directory, refusing the test recipients."""

    def __init__(self, maildir):
        self.maildir = maildir

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "tempfail":
            return "451 4.3.0 Temporary failure for this recipient, try again later"
        if local == "permfail":
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}"
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
            "authenticated_as": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
            "received_at": time.time(),
        }
        # The .eml appears last and whole: tests wait for it.
        write_atomically(os.path.join(self.maildir, name + ".json"), json.dumps(meta).encode())
        write_atomically(os.path.join(self.maildir, name + ".eml"), envelope.original_content)
        return f"250 2.0.0 Ok: queued as {name}"


def write_atomically(path, data):
    temporary = path + ".part"
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        if ok:
            return AuthResult(success=True, auth_data=auth_data.login)
        # Not handled here: aiosmtpd answers 535.
        return AuthResult(success=False, handled=False)

    return check


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(args):
    loop = asyncio.get_running_loop()
    mailbox = Mailbox(args.maildir)
    auth = authenticator(args.user, args.password)
    good = tls_context(args.cert, args.key)
    wrong = tls_context(args.wrong_cert, args.wrong_key)
    common = {"hostname": "localhost", "ident": "Loupe test SMTP", "loop": loop}

    def starttls(context):
        return lambda: SMTP(
            mailbox,
            tls_context=context,
            require_starttls=True,
            authenticator=auth,
            auth_required=True,
            **common,
        )

    servers = {
        "starttls": await loop.create_server(starttls(good), "127.0.0.1", 0),
        # TLS is the transport itself here, which aiosmtpd does not count
        # as STARTTLS: AUTH must not ask for it again.
        "implicit": await loop.create_server(
            lambda: SMTP(
                mailbox, authenticator=auth, auth_required=True, auth_require_tls=False, **common
            ),
            "127.0.0.1",
            0,
            ssl=good,
        ),
        "plain": await loop.create_server(lambda: SMTP(mailbox, **common), "127.0.0.1", 0),
        "wrong_name": await loop.create_server(starttls(wrong), "127.0.0.1", 0),
    }
    lines = [f"{key}={server.sockets[0].getsockname()[1]}\n" for key, server in servers.items()]
    write_atomically(args.ready, "".join(lines).encode())
    await asyncio.gather(*(server.serve_forever() for server in servers.values()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in ("cert", "key", "wrong-cert", "wrong-key", "maildir", "user", "password", "ready"):
        parser.add_argument("--" + option, required=True)
    args = parser.parse_args()
    # AUTH without STARTTLS on the implicit port is intended (TLS is on).
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
