#!/usr/bin/python3
"""A SOCKS5 server that misbehaves on purpose, for tests of the client's bounds.

Listens on 127.0.0.1:--port (prints `ready` once it does) and answers every connection as
--mode says:

* `hangup`: reads the greeting, then closes the connection (a server gone mid-handshake).
* `silent`: reads the greeting, then says nothing and keeps the connection open.
* `garbage`: accepts "no authentication", then answers the request with a reply of an
  unknown address type followed by junk, and keeps the connection open.
* `bad-relay`: grants a UDP ASSOCIATE with a relay on 127.0.0.1. Once the client's first
  datagram arrives there, the relay sends back datagrams with bad headers (a fragment, a host
  name as the source, an unknown address type 9, headers cut short, an empty datagram) and one
  good one; another socket, not the relay, sends a datagram of address type 11 to the same
  client address, which the client must never see, and a last fragment from the relay behind
  it. Prints `sent bad datagrams` then.

Every connection is logged on stderr.
"""
import argparse
import socket
import sys
import threading


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


def read_greeting(conn):
    _version, count = read_exact(conn, 2)
    read_exact(conn, count)


def read_request(conn):
    _version, command, _rsv, atyp = read_exact(conn, 4)
    if atyp == 1:
        read_exact(conn, 4 + 2)
    elif atyp == 4:
        read_exact(conn, 16 + 2)
    else:
        (length,) = read_exact(conn, 1)
        read_exact(conn, length + 2)
    return command


def header(atyp_and_addr, frag=0):
    return bytes([0, 0, frag]) + atyp_and_addr


V4_SOURCE = bytes([1, 127, 0, 0, 1, 0x1A, 0xE1])


def bad_datagrams():
    name = b"peer.example"
    return [
        header(V4_SOURCE, frag=1) + b"fragment",
        header(bytes([3, len(name)]) + name + b"\x1a\xe1") + b"named source",
        header(bytes([9, 1, 2, 3, 4, 0, 80])) + b"unknown type",
        bytes([0, 0, 0, 4, 0x20, 0x01]),
        bytes([0, 0]),
        b"",
        header(bytes([3, 200]) + b"short"),
        header(V4_SOURCE) + b"d1:y1:qe",
    ]


def relay(udp, stranger):
    data, client = udp.recvfrom(65536)
    log("relay: first datagram (%d bytes) from %s:%d" % (len(data), client[0], client[1]))
    for d in bad_datagrams():
        udp.sendto(d, client)
    stranger.sendto(header(bytes([11, 1, 2, 3, 4, 0, 80])) + b"not from the relay", client)
    # Behind the stranger's: once the client has dropped this one, it has seen the other.
    udp.sendto(header(V4_SOURCE, frag=2) + b"last", client)
    print("sent bad datagrams", flush=True)
    while True:
        udp.recvfrom(65536)


def serve(conn, mode):
    try:
        read_greeting(conn)
        if mode == "hangup":
            log("greeting read: hanging up")
            conn.close()
            return
        if mode == "silent":
            log("greeting read: saying nothing")
            while conn.recv(4096):
                pass
            return
        conn.sendall(bytes([5, 0]))
        command = read_request(conn)
        if mode == "garbage":
            log("request %d: answering garbage" % command)
            conn.sendall(bytes([5, 0, 0, 7]) + bytes(range(256)) * 2)
        else:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            log("request %d: relay on 127.0.0.1:%d" % (command, port))
            threading.Thread(target=relay, args=(udp, stranger), daemon=True).start()
            conn.sendall(bytes([5, 0, 0, 1, 127, 0, 0, 1]) + port.to_bytes(2, "big"))
        while conn.recv(4096):
            pass
    except (ConnectionError, OSError) as e:
        log("connection ended: %s" % e)
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["hangup", "silent", "garbage", "bad-relay"], required=True)
    args = p.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, args.mode), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
