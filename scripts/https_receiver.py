"""The HTTPS receiver of the delivery tests (webhooks, Slack), on loopback.

Every request is written to the receiver directory as one JSON file
({"method", "path", "headers": [[name, value], ...], "body_base64",
"arrival"}), before it is answered. The status depends on the path:
- /status/<code> answers <code>, with a body longer than an error
  message should quote;
- /flaky/<key> answers 503 the first time a key is seen, 200 after;
- anything else answers 200.

When listening, the port is written to the ready file as port=PORT.
Started by scripts/databases.sh (loupe_start_receiver); runs until killed.
"""

import argparse
import base64
import itertools
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

counter = itertools.count()
flaky_seen = set()
flaky_lock = threading.Lock()


def write_atomically(path, data):
    temporary = path + ".part"
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def status_for(path):
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "status" and parts[1].isdigit():
        code = int(parts[1])
        if 200 <= code <= 599:
            return code
    if len(parts) >= 2 and parts[0] == "flaky":
        with flaky_lock:
            if parts[1] not in flaky_seen:
                flaky_seen.add(parts[1])
                return 503
    return 200


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoupeTestReceiver/1"
    directory = "."

    def setup(self):
        self.request.settimeout(30)
        # The TLS handshake runs here, in the request's thread, so a client
        # that gives up on the certificate does not hold up the others.
        self.request.do_handshake()
        super().setup()

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urlsplit(self.path).path
        record = {
            "method": self.command,
            "path": path,
            "query": urlsplit(self.path).query,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_base64": base64.b64encode(body).decode(),
            "arrival": time.time(),
        }
        name = f"{time.time_ns()}-{next(counter)}.json"
        write_atomically(os.path.join(self.directory, name), json.dumps(record).encode())
        code = status_for(path)
        if code == 200:
            reply = b"ok"
        else:
            reply = (f"the test receiver answers {code} at {path}; " + "x" * 400).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(reply)))
        if code == 429:
            self.send_header("Retry-After", "7")
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = answer

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that refuses the certificate is expected in the tests.
        error = sys.exc_info()[1]
        sys.stderr.write(f"{client_address[0]}: {type(error).__name__}: {error}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in ("cert", "key", "dir", "ready"):
        parser.add_argument("--" + option, required=True)
    args = parser.parse_args()
    Receiver.directory = args.dir
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    server = Server(("127.0.0.1", 0), Receiver)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    write_atomically(args.ready, f"port={server.server_address[1]}\n".encode())
    server.serve_forever()


if __name__ == "__main__":
    main()
