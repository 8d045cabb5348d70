#!/usr/bin/env python3
"""Writes the seed inputs of the shoal-core fuzz targets into corpus/<target>/seed-*.

Seeds are real inputs: the fixture torrents of core/tests/fixtures, opentracker answers captured
in core/src/tracker (HTTP and UDP), encoded wire messages and sample magnet links. Run from
anywhere; existing seed-* files are overwritten, fuzzer-found files are left alone.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def info_span(torrent):
    """The raw bytes of the top-level `info` value of a torrent (minimal bencode walker)."""

    def skip(b, i):
        c = b[i : i + 1]
        if c == b"i":
            return b.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while b[i : i + 1] != b"e":
                i = skip(b, i)
            return i + 1
        colon = b.index(b":", i)
        return colon + 1 + int(b[i:colon])

    assert torrent[:1] == b"d"
    i = 1
    while torrent[i : i + 1] != b"e":
        key_end = skip(torrent, i)
        colon = torrent.index(b":", i)
        key = torrent[colon + 1 : key_end]
        value_end = skip(torrent, key_end)
        if key == b"info":
            return torrent[key_end:value_end]
        i = value_end
    return None


# ---- wire ---------------------------------------------------------------------------------


def frame(msg_id, body=b""):
    return struct.pack(">IB", len(body) + 1, msg_id) + body


def block(msg_id, piece, offset, length):
    return frame(msg_id, struct.pack(">III", piece, offset, length))


MESSAGES = {
    "keepalive": b"\0\0\0\0",
    "choke": frame(0),
    "unchoke": frame(1),
    "interested": frame(2),
    "not-interested": frame(3),
    "have": frame(4, struct.pack(">I", 5)),
    "bitfield": frame(5, b"\xff\xc0"),
    "request": block(6, 1, 16384, 16384),
    "piece": frame(7, struct.pack(">II", 2, 32768) + bytes(range(64))),
    "cancel": block(8, 3, 16384, 16384),
    "port": frame(9, struct.pack(">H", 6881)),
    "suggest": frame(13, struct.pack(">I", 4)),
    "have-all": frame(14),
    "have-none": frame(15),
    "reject": block(16, 6, 16384, 16384),
    "allowed-fast": frame(17, struct.pack(">I", 8)),
    "ext-handshake": frame(20, b"\0d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e4:reqqi500e1:v9:Shoal 0.1e"),
    "ext-metadata": frame(20, b"\x02d8:msg_typei0e5:piecei0ee"),
    "unknown-id": frame(42, b"skipped"),
}
HANDSHAKE = (
    b"\x13BitTorrent protocol"
    + bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])
    + bytes.fromhex("0123456789abcdef0123456789abcdef01234567")
    + b"-SH0001-abcdefghijkl"
)
# Config bytes of WireConfig::take: flags, then a little-endian piece count when bit 1 is set.
NO_COUNT = b"\x00"
TEN_PIECES = b"\x02" + struct.pack("<H", 10)
SMALL_LIMITS_TEN = b"\x03" + struct.pack("<H", 10)
HANDSHAKE_TEN = b"\x82" + struct.pack("<H", 10)


def wire():
    for name, msg in MESSAGES.items():
        put("wire_message", name, NO_COUNT + msg)
        put("wire_message", name + "-10", TEN_PIECES + msg)
    put("wire_message", "small-limits", SMALL_LIMITS_TEN + MESSAGES["piece"])
    put("wire_message", "handshake", HANDSHAKE_TEN + HANDSHAKE + MESSAGES["ext-handshake"] + MESSAGES["bitfield"])
    put("wire_message", "bad-handshake", b"\x80" + b"\x13BitTorrent protocoX")
    put("wire_message", "too-long", NO_COUNT + struct.pack(">IB", 300 * 1024, 7))

    stream = b"".join(MESSAGES.values())
    put("wire_stream", "bytewise", TEN_PIECES + b"\x01\x01" + stream)
    put("wire_stream", "mixed", TEN_PIECES + b"\x04\x03\x00\x11\x40" + stream)
    put("wire_stream", "whole", NO_COUNT + b"\x01\xff" + stream)
    put("wire_stream", "handshake", HANDSHAKE_TEN + b"\x02\x05\x17" + HANDSHAKE + stream)
    put("wire_stream", "bad-tail", TEN_PIECES + b"\x01\x07" + stream + MESSAGES["have"][:-1] + b"\x63")

    put("extended_handshake", "shoal", b"d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e4:reqqi500e1:v9:Shoal 0.1e")
    put(
        "extended_handshake",
        "libtorrent",
        b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e"
        b"11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e4:reqqi500e11:upload_onlyi0e"
        b"1:v17:libtorrent 2.0.10" + b"6:yourip4:\x7f\x00\x00\x01e",
    )
    put("extended_handshake", "ips", b"d4:ipv416:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x014:ipv44:\x0a\0\0\x021:mdee")
    put("extended_handshake", "empty", b"d1:mdee")
    put("ut_metadata", "request", b"d8:msg_typei0e5:piecei0ee")
    put("ut_metadata", "reject", b"d8:msg_typei2e5:piecei3ee")
    put("ut_metadata", "data", b"d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef")
    put("ut_metadata", "extra-keys", b"d5:extrali1ee8:msg_typei1e5:piecei0e10:total_sizei2ee\x00\x01")
    # libtorrent's layout: all six keys, IPv4 peers with flags (seed + outgoing), one dropped.
    put(
        "ut_pex",
        "libtorrent",
        b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\xc8\xd57:added.f2:\x12\x00"
        b"6:added60:8:added6.f0:7:dropped6:\x0a\x00\x00\x03\x1a\xe28:dropped60:e",
    )
    put("ut_pex", "ipv6", b"d6:added618:" + bytes(range(1, 17)) + b"\x1a\xe18:added6.f1:\x04e")
    put("ut_pex", "no-flags", b"d5:added6:\x7f\x00\x00\x01\x1a\xe1e")
    put("ut_pex", "empty", b"de")
    put("ut_pex", "odd-length", b"d5:added5:abcdee")


# ---- bencode and metainfo ----------------------------------------------------------------


def torrents():
    for fname in sorted(os.listdir(FIXTURES)):
        if not fname.endswith(".torrent"):
            continue
        with open(os.path.join(FIXTURES, fname), "rb") as f:
            data = f.read()
        stem = fname[: -len(".torrent")]
        put("metainfo", stem, data)
        put("bencode", stem, data)
        info = info_span(data)
        if info is not None:
            put("metainfo", stem + "-info", info)
    for name, value in {
        "int": b"i-42e",
        "string": b"4:spam",
        "list": b"l4:spami3ee",
        "dict": b"d3:cow3:moo4:spaml1:a1:bee",
        "unsorted": b"d1:b1:x1:a1:ye",
        "nested": b"lllleeee",
        "trailing": b"dee",
        "big-int": b"i18446744073709551615e",
    }.items():
        put("bencode", name, value)


# ---- magnets ------------------------------------------------------------------------------


def magnets():
    h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    samples = {
        "full": (
            f"magnet:?xt=urn:btih:{h.upper()}&dn=Big+Buck+Bunny%20%281080p%29"
            "&tr=udp%3A%2F%2F127.0.0.1%3A6969&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce"
            "&x.pe=127.0.0.1:51413&x.pe=%5B%3A%3A1%5D%3A6881&x.pe=nonsense&ws=http%3A%2F%2Fx%2F&so=0,2,4-6"
        ),
        "bare": f"magnet:?xt=urn:btih:{h}",
        "base32": "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=x",
        "hybrid": f"magnet:?xt=urn:btmh:1220{'ab' * 32}&xt=urn:btih:{h}&dn=hybrid&tr.1=udp://a:1&tr.2=udp://b:2",
        "v2only": f"magnet:?xt=urn:btmh:1220{'ab' * 32}&dn=x",
        "select": f"magnet:?xt=urn:btih:{h}&so=0-3,7,9-9&so=1",
    }
    for name, uri in samples.items():
        put("magnet", name, uri)


# ---- trackers -----------------------------------------------------------------------------

# Captured from Debian's opentracker on 127.0.0.1 (see core/src/tracker/http.rs).
OT_ANNOUNCE = bytes.fromhex(
    "64383a636f6d706c65746569316531303a646f776e6c6f616465646930"
    "6531303a696e636f6d706c657465693265383a696e74657276616c69313835326531323a6d696e20696e7465"
    "7276616c6939323665353a706565727331383a7f0000011ae17f0000011ae37f0000011ae265"
)
OT_FAILURE = bytes.fromhex(
    "6431343a6661696c75726520726561736f6e36333a52657175657374"
    "656420646f776e6c6f6164206973206e6f7420617574686f72697a656420666f7220757365207769746820"
    "7468697320747261636b65722e65"
)
OT_SCRAPE = bytes.fromhex(
    "64353a66696c65736432303a0123456789abcdef0123456789abcdef01"
    "23456764383a636f6d706c65746569316531303a646f776e6c6f6164656469306531303a696e636f6d706c"
    "657465693265656565"
)
# Captured UDP datagrams (see core/src/tracker/udp/codec.rs).
UDP_CONNECT = bytes.fromhex("0000000011223344f976d506082f2989")
UDP_ANNOUNCE = bytes.fromhex(
    "0000000155667788000006f000000002000000027f0000011ae17f0000011ae37f0000011ae47f0000011ae2"
)
UDP_SCRAPE = bytes.fromhex("0000000299aabbcc000000020000000000000002")


def trackers():
    put("tracker_http", "opentracker-announce", OT_ANNOUNCE)
    put("tracker_http", "opentracker-failure", OT_FAILURE)
    put("tracker_http", "opentracker-scrape", OT_SCRAPE)
    body = (
        b"d8:intervali900e5:peersl"
        b"d2:ip8:10.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti51413ee"
        b"d4:porti80e2:ip11:example.come"
        b"d2:ip3:::14:porti6881ee"
        b"e6:peers618:" + bytes.fromhex("20010db8000000000000000000000001") + b"\x1a\xe1"
        b"15:warning message4:slow10:tracker id3:abc8:completei-1ee"
    )
    put("tracker_http", "dict-peers", body)

    put("tracker_udp", "opentracker-connect", UDP_CONNECT)
    put("tracker_udp", "opentracker-announce", UDP_ANNOUNCE)
    put("tracker_udp", "opentracker-scrape", UDP_SCRAPE)
    put("tracker_udp", "error", struct.pack(">II", 3, 7) + b"torrent not registered")
    put(
        "tracker_udp",
        "announce-v6",
        struct.pack(">IIIII", 1, 9, 1800, 3, 4) + bytes.fromhex("20010db8000000000000000000000001") + b"\x1a\xe1",
    )
    put("tracker_udp", "connect-request", struct.pack(">QII", 0x41727101980, 0, 7))

    # udp_exchange: flags, then events (op, len, datagram). Op 0xc1 patches in the expected
    # transaction id and action; 0x00 is a timeout.
    connect = struct.pack(">IIQ", 0, 0, 0xC0FFEE)
    announce = struct.pack(">IIIII", 1, 0, 1800, 2, 1) + bytes.fromhex("7f0000011ae1" "0a0000021ae2")
    announce6 = struct.pack(">IIIII", 1, 0, 1800, 0, 1) + bytes.fromhex("20010db8000000000000000000000007c8d5")
    scrape = struct.pack(">IIIII", 2, 0, 1, 2, 3)
    error = struct.pack(">II", 3, 0) + b"torrent not registered"

    def ev(dgram, op=0xC1):
        return bytes([op, len(dgram)]) + dgram

    put("udp_exchange", "announce", b"\x18" + ev(connect) + ev(announce))
    put("udp_exchange", "announce-v6", b"\x1a" + ev(connect) + ev(announce6))
    put("udp_exchange", "scrape", b"\x19" + ev(connect) + ev(scrape))
    put("udp_exchange", "cached-scrape", b"\x1d" + ev(scrape))
    put("udp_exchange", "retransmit", b"\x18\x00" + ev(connect) + b"\x00\x00" + ev(announce))
    put("udp_exchange", "error", b"\x18" + ev(error))
    put("udp_exchange", "bare-header", b"\x18" + ev(connect) + ev(struct.pack(">II", 1, 0)))


def mse():
    """MSE handshakes. Byte 0: bit 0 scripted (the rest is the plaintext of the peer's
    encrypted part) or raw, bits 1-2 the allowed levels; byte 1 the chunk size."""
    vc = bytes(8)
    handshake = b"\x13BitTorrent protocol" + bytes(8) + bytes(range(20)) + b"-SH0010-abcdefghijkl"
    for levels in range(3):
        # VC, crypto_provide 3, PadC of 4, then the initial payload (a handshake).
        body = vc + struct.pack(">IH", 3, 4) + bytes(4) + struct.pack(">H", len(handshake)) + handshake
        put("mse_responder", f"request-{levels}", bytes([1 | levels << 1, 17]) + body)
        put("mse_responder", f"request-nothing-{levels}", bytes([1 | levels << 1, 255]) + vc + struct.pack(">IHH", 3, 0, 0))
        # VC, crypto_select, PadD of 2, then a keep-alive.
        for select in (1, 2):
            reply = vc + struct.pack(">IH", select, 2) + bytes(2) + bytes(4)
            put("mse_initiator", f"reply-{levels}-{select}", bytes([1 | levels << 1, 5]) + reply)
    # The longest padding either side may send (512; 513 is refused), PadC then PadD.
    for pad in (512, 513):
        body = vc + struct.pack(">IH", 3, pad) + bytes(pad) + struct.pack(">H", len(handshake)) + handshake
        put("mse_responder", f"request-pad-{pad}", bytes([1 | 2 << 1, 64]) + body)
        put("mse_initiator", f"reply-pad-{pad}", bytes([1 | 2 << 1, 64]) + vc + struct.pack(">IH", 2, pad) + bytes(pad) + bytes(4))
    put("mse_responder", "raw-key", bytes([0, 40]) + bytes(range(96)) + bytes(100))
    put("mse_initiator", "raw-key", bytes([4, 40]) + bytes(range(1, 97)) + bytes(530))
def utp():
    """uTP packets as BEP 29 lays them out, and socket scripts that open a connection and move
    data (see utp_socket in src/checks.rs for the op layout)."""

    def pkt(kind, conn_id=0x1234, seq=100, ack=0, wnd=1 << 20, ext=b"", payload=b""):
        first_ext = 1 if ext else 0
        return (
            struct.pack(">BBHIIIHH", kind << 4 | 1, first_ext, conn_id, 5000, 40, wnd, seq, ack)
            + ext
            + payload
        )

    sack = bytes([0, 4, 0b101, 0, 0, 0])
    put("utp_packet", "syn", pkt(4))
    put("utp_packet", "state", pkt(2, ack=99))
    put("utp_packet", "data", pkt(0, payload=b"\x13BitTorrent protocol"))
    put("utp_packet", "state-sack", pkt(2, ext=sack))
    put("utp_packet", "fin", pkt(1, seq=200))
    put("utp_packet", "reset", pkt(3))
    put("utp_packet", "unknown-ext", pkt(0, ext=bytes([1, 2, 9, 9]) + sack, payload=b"x"))

    def ev(op, dgram):
        return bytes([op, len(dgram)]) + dgram

    # op 3: the answer to our SYN (id and ACK patched in); op 2: data on the connection.
    answer = ev(3, pkt(2, seq=500))
    data = ev(3, pkt(0, seq=500, payload=b"hello"))
    put("utp_socket", "connect", answer)
    put("utp_socket", "connect-data-read", answer + data + b"\x05")
    put("utp_socket", "connect-write-ack", answer + b"\x04" + b"\x00\x64")
    put("utp_socket", "syn-timeout", b"\x00\xff\x00\xff\x00\xff")
    put("utp_socket", "incoming-syn", ev(1, pkt(4, conn_id=77)) + ev(0x81, pkt(4, conn_id=78)))
    put("utp_socket", "fin", answer + data + ev(3, pkt(1, seq=501)) + b"\x05")
    put("utp_socket", "close", answer + b"\x04\x06\x00\x80")
def socks():
    """SOCKS5 servers' answers: flag byte (bit 0 credentials, bit 1 UDP ASSOCIATE, bits 2..5
    chunk size - 1), then what the server sends."""
    ok4 = bytes([5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38])
    ok6 = bytes([5, 0, 0, 4]) + bytes(15) + b"\x01" + b"\x04\x38"
    named = bytes([5, 0, 0, 3, 9]) + b"localhost" + b"\x04\x38"
    put("socks_reply", "no-auth", b"\x3c" + bytes([5, 0]) + ok4 + b"\x13BitTorrent protocol")
    put("socks_reply", "user-pass", b"\x01" + bytes([5, 2, 1, 0]) + ok6)
    put("socks_reply", "udp-associate", b"\x07" + bytes([5, 0]) + named)
    put("socks_reply", "auth-failed", b"\x01" + bytes([5, 2, 1, 1]))
    put("socks_reply", "refused", b"\x00" + bytes([5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]))
    put("socks_reply", "no-method", b"\x00" + bytes([5, 0xFF]))
    put("socks_reply", "datagram", bytes([0, 0, 0, 1, 127, 0, 0, 1, 0x1A, 0xE1]) + b"payload")
    put("socks_reply", "datagram-v6", bytes([0, 0, 0, 4]) + bytes(15) + bytes([1, 0x1A, 0xE1]) + b"\x41\x00utp")
    put("socks_reply", "datagram-named", bytes([0, 0, 0, 3, 4]) + b"peer" + bytes([0x1A, 0xE1]) + b"d1:ad")
    put("socks_reply", "datagram-fragment", bytes([0, 0, 1, 1, 127, 0, 0, 1, 0x1A, 0xE1]) + b"part")


if __name__ == "__main__":
    wire()
    torrents()
    magnets()
    trackers()
    mse()
    utp()
    socks()
    total = 0
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        total += size
        print(f"{target:20} {len(files):4} files {size:8} bytes")
    print(f"{'total':20}      {total:8} bytes")
