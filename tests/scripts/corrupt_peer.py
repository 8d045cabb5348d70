#!/usr/bin/python3
"""A hostile BitTorrent peer on loopback that serves corrupted data.

It accepts connections, answers the handshake for the torrent, claims every piece (bitfield),
unchokes, and answers every request with the real data with one byte flipped per block, so
each piece it contributes fails its hash check. Prints `ready` once listening; logs what it
serves to stderr; runs until killed. libtorrent is used only to parse the .torrent.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

import libtorrent as lt

MAX_BLOCK = 128 * 1024
PSTR = b"BitTorrent protocol"


def log(msg):
    print("%.3f %s" % (time.monotonic(), msg), file=sys.stderr, flush=True)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return buf


class Torrent:
    def __init__(self, path, save_path):
        self.ti = lt.torrent_info(path)
        self.fs = self.ti.files()
        self.save_path = save_path
        self.info_hash = bytes.fromhex(str(self.ti.info_hashes().v1))

    def bitfield(self):
        n = self.ti.num_pieces()
        bits = bytearray((n + 7) // 8)
        for i in range(n):
            bits[i // 8] |= 0x80 >> (i % 8)
        return bytes(bits)

    def valid(self, index, begin, length):
        if not (0 <= index < self.ti.num_pieces()) or not (0 < length <= MAX_BLOCK):
            return False
        return begin >= 0 and begin + length <= self.ti.piece_size(index)

    def read(self, index, begin, length):
        out = bytearray()
        for s in self.ti.map_block(index, begin, length):
            if self.fs.file_flags(s.file_index) & lt.file_storage.flag_pad_file:
                out += bytes(s.size)
                continue
            with open(os.path.join(self.save_path, self.fs.file_path(s.file_index)), "rb") as f:
                f.seek(s.offset)
                out += f.read(s.size)
        return out


def serve(conn, addr, torrent, peer_id):
    try:
        hs = recv_exact(conn, 68)
        if hs[0] != 19 or hs[1:20] != PSTR or hs[28:48] != torrent.info_hash:
            log("%s: bad handshake" % (addr,))
            return
        conn.sendall(bytes([19]) + PSTR + bytes(8) + torrent.info_hash + peer_id)
        bf = torrent.bitfield()
        conn.sendall(struct.pack(">IB", 1 + len(bf), 5) + bf)
        conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
        log("%s: handshake done, sent bitfield and unchoke" % (addr,))
        while True:
            (length,) = struct.unpack(">I", recv_exact(conn, 4))
            if length == 0:
                continue  # keep-alive
            if length > MAX_BLOCK + 64:
                log("%s: message too long (%d)" % (addr, length))
                return
            msg = recv_exact(conn, length)
            if msg[0] == 6 and length == 13:  # request
                index, begin, size = struct.unpack(">III", msg[1:])
                if not torrent.valid(index, begin, size):
                    log("%s: invalid request %d/%d/%d" % (addr, index, begin, size))
                    return
                block = torrent.read(index, begin, size)
                block[len(block) // 2] ^= 0xFF
                conn.sendall(struct.pack(">IBII", 9 + len(block), 7, index, begin) + block)
                log("%s: sent corrupted block piece=%d begin=%d len=%d"
                    % (addr, index, begin, size))
    except (EOFError, ConnectionError, OSError) as e:
        log("%s: connection ended: %s" % (addr, e))
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True, help="dir holding the real data")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()

    torrent = Torrent(args.torrent, args.save_path)
    peer_id = b"-XX0001-corruptpeer!"
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, addr = srv.accept()
        log("connection from %s:%d" % addr)
        threading.Thread(target=serve, args=(conn, addr, torrent, peer_id), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
