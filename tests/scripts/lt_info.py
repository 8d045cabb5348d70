#!/usr/bin/python3
"""Print libtorrent's view of a .torrent as JSON (for cross-checking other tools)."""
import json
import sys

import libtorrent as lt


def main():
    ti = lt.torrent_info(sys.argv[1])
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        files.append({
            "path": fs.file_path(i),
            "length": fs.file_size(i),
            "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        })
    tiers = {}
    for t in ti.trackers():
        tiers.setdefault(t.tier, []).append(t.url)
    print(json.dumps({
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "piece_count": ti.num_pieces(),
        "private": ti.priv(),
        "trackers": [tiers[k] for k in sorted(tiers)],
        "files": files,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
