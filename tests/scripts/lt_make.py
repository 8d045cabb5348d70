#!/usr/bin/python3
"""Create a .torrent with libtorrent: v1-only, or v1+v2 hybrid (which gets BEP 47 pad files)."""
import argparse
import os
import sys

import libtorrent as lt


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--path", required=True, help="file or directory to make a torrent of")
    p.add_argument("--out", required=True)
    p.add_argument("--piece-size", type=int, required=True)
    p.add_argument("--tracker", action="append", default=[], help="one tier per URL")
    p.add_argument("--hybrid", action="store_true", help="v1+v2 hybrid instead of v1-only")
    p.add_argument("--private", action="store_true")
    args = p.parse_args()

    path = os.path.abspath(args.path)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = 0 if args.hybrid else lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, args.piece_size, flags)
    for tier, url in enumerate(args.tracker):
        ct.add_tracker(url, tier)
    ct.set_creator("shoal-tests")
    if args.private:
        ct.set_priv(True)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
