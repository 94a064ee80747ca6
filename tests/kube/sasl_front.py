"""A Kafka endpoint that requires SASL PLAIN (over TLS when given a certificate), in front of a
broker that has no authentication — the tests' stand-in for a Kafka that authenticates.

    python sasl_front.py LISTEN_PORT UPSTREAM_HOST:UPSTREAM_PORT [CERT KEY]

The username and password it accepts come from ``$SASL_FRONT_USERNAME`` / ``$SASL_FRONT_PASSWORD``
(never the command line). Why it exists: the embedded broker (Tansu 0.6) has ``--authentication``
but no way to create a user once it is on, and no other Kafka-protocol broker installs from PyPI,
Debian or npm here.

Per connection, until the client has authenticated, it answers SaslHandshake (v0–v1: mechanism
PLAIN only) and SaslAuthenticate (v0–v1) itself, passes ApiVersions through to the broker (whose
answer lists both APIs), and closes the connection on any other request or a wrong password.
Once authenticated, the connection is spliced to the broker byte for byte. The broker must
advertise this endpoint's address, so that clients come back through it. Nothing of ingestload
is imported: it runs in a pod with the image's Python.
"""

import contextlib
import os
import socket
import ssl
import struct
import sys
import threading

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58


def read_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(sock):
    head = read_exact(sock, 4)
    if head is None:
        return None
    return read_exact(sock, struct.unpack(">i", head)[0])


def send_frame(sock, body):
    sock.sendall(struct.pack(">i", len(body)) + body)


def body_after_header(frame):
    """A v1 request header: api key, version, correlation id, client id (nullable string)."""
    (length,) = struct.unpack(">h", frame[8:10])
    return frame[10 + max(length, 0) :]


def string(value):
    return struct.pack(">h", len(value)) + value


def handshake(frame, correlation):
    body = body_after_header(frame)
    (length,) = struct.unpack(">h", body[:2])
    error = 0 if body[2 : 2 + length] == b"PLAIN" else UNSUPPORTED_SASL_MECHANISM
    return struct.pack(">ihi", correlation, error, 1) + string(b"PLAIN"), error == 0


def authenticate(frame, correlation, version):
    body = body_after_header(frame)
    (length,) = struct.unpack(">i", body[:4])
    parts = body[4 : 4 + length].split(b"\0")
    wanted = [os.environ["SASL_FRONT_USERNAME"].encode(), os.environ["SASL_FRONT_PASSWORD"].encode()]
    ok = len(parts) == 3 and parts[1:] == wanted
    message = b"" if ok else b"Authentication failed: invalid username or password"
    answer = struct.pack(">ih", correlation, 0 if ok else SASL_AUTHENTICATION_FAILED)
    answer += string(message) if message else struct.pack(">h", -1)
    answer += struct.pack(">i", 0)  # no auth bytes back
    if version >= 1:
        answer += struct.pack(">q", 0)  # no session lifetime
    return answer, ok


def splice(source, target):
    # tests/bouncer.py pipes the same way; this file runs alone in a pod, so it cannot import it.
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    for sock in (source, target):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def serve(client, upstream_address):
    upstream = socket.create_connection(upstream_address)
    try:
        while True:
            frame = read_frame(client)
            if frame is None or len(frame) < 10:
                return
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            if api_key == API_VERSIONS:
                send_frame(upstream, frame)
                answer = read_frame(upstream)
                if answer is None:
                    return
                send_frame(client, answer)
            elif api_key == SASL_HANDSHAKE and version <= 1:
                answer, ok = handshake(frame, correlation)
                send_frame(client, answer)
                if not ok:
                    return
            elif api_key == SASL_AUTHENTICATE and version <= 1:
                answer, ok = authenticate(frame, correlation, version)
                send_frame(client, answer)
                if not ok:
                    print("sasl-front: authentication refused", file=sys.stderr, flush=True)
                    return
                threading.Thread(target=splice, args=(upstream, client), daemon=True).start()
                splice(client, upstream)
                return
            else:
                print(f"sasl-front: api {api_key} before authentication: closed", file=sys.stderr, flush=True)
                return
    except OSError:
        pass
    finally:
        for sock in (client, upstream):
            sock.close()


def main(port, upstream, cert=None, key=None):
    host, _, upstream_port = upstream.rpartition(":")
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    listener = socket.create_server(("0.0.0.0", int(port)), reuse_port=False)
    print(f"sasl-front: SASL PLAIN{' over TLS' if context else ''} on :{port} → {upstream}", flush=True)
    while True:
        client, _ = listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def start(client=client):
            try:
                wrapped = context.wrap_socket(client, server_side=True) if context else client
            except (OSError, ssl.SSLError):
                client.close()
                return
            serve(wrapped, (host, int(upstream_port)))

        threading.Thread(target=start, daemon=True).start()


if __name__ == "__main__":
    main(*sys.argv[1:5])
