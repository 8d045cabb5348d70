#!/usr/bin/env bash
# The main job, runnable on a fresh machine: builds `shoal`, makes a 64 MiB example torrent,
# seeds it with one shoal and downloads it with another, on loopback only, then checks the copy.
#
#   bash scripts/demo.sh [DIR]     # DIR (default: a temporary directory) keeps the files
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p shoal-api
shoal="$PWD/target/release/shoal"
# Loopback only: no DHT routers, no LSD multicast.
export SHOAL_LOCAL_ONLY=1
dir=${1:-$(mktemp -d)}
mkdir -p "$dir/seed/example" "$dir/download"

if [[ ! -f "$dir/seed/example/data.bin" ]]; then
    head -c $((64 << 20)) /dev/urandom > "$dir/seed/example/data.bin"
    echo "Shoal example torrent" > "$dir/seed/example/README.txt"
fi
"$shoal" create "$dir/seed/example" -o "$dir/example.torrent" --comment "Shoal demo"
"$shoal" info "$dir/example.torrent"

"$shoal" seed "$dir/example.torrent" "$dir/seed" --bind 127.0.0.1 --listen-port 17881 \
    2> "$dir/seed.log" &
seeder=$!
trap 'kill $seeder 2>/dev/null || true' EXIT
# Wait until the seeder has checked its data and is seeding (no fixed sleep).
for _ in $(seq 1 300); do
    grep -q "seeding" "$dir/seed.log" 2>/dev/null && break
    kill -0 $seeder 2>/dev/null || { cat "$dir/seed.log"; exit 1; }
    sleep 0.1
done

"$shoal" download "$dir/example.torrent" -o "$dir/download" --bind 127.0.0.1 --listen-port 0 \
    --peer 127.0.0.1:17881
cmp "$dir/seed/example/data.bin" "$dir/download/example/data.bin"
echo "demo: downloaded copy is identical to the source ($dir)"
