#!/usr/bin/env bash
# The test suite: installs the real BitTorrent programs the interop tests talk to (on loopback
# only), builds the release `shoal` binary and runs every test of the workspace in release mode.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -- --nocapture  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages used by shoal-tests (tests/): libtorrent for Python, a tracker, and the
# other clients and torrent makers Shoal must interoperate with; strace for tests/local_only.rs.
packages=(python3-libtorrent opentracker transmission-cli aria2 mktorrent strace)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "test.sh: installing ${missing[*]}" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        echo "test.sh: missing Debian packages: ${missing[*]}" >&2
        echo "install them first: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

cargo build --release -p shoal-api

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
export SHOAL_BIN="$target_dir/release/shoal"
# Tests must not reach beyond loopback: features that would (public DHT bootstrap, public
# trackers, port mapping) stay off when this is set.
export SHOAL_LOCAL_ONLY=1
# Debian's python3 has the libtorrent module (a pyenv python on PATH would not).
export SHOAL_PYTHON=/usr/bin/python3

cargo test --workspace --release "$@"

# A short fuzz pass over the decoders of shoal-core (core/fuzz, see core/fuzz/README.md): ~10 s
# per target, starting from the committed corpus. New inputs go to a scratch directory, so the
# committed corpus is left alone; a crash leaves its input in core/fuzz/artifacts/<target>/.
# cargo-fuzz passes nightly-only flags to rustc; RUSTC_BOOTSTRAP=1 lets a stable toolchain
# accept them.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "test.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
fuzz_scratch=$(mktemp -d)
trap 'rm -rf "$fuzz_scratch"' EXIT
cargo fuzz build --fuzz-dir core/fuzz
for target in $(cargo fuzz list --fuzz-dir core/fuzz); do
    echo "test.sh: fuzzing $target for 10 s" >&2
    mkdir -p "$fuzz_scratch/$target"
    if ! cargo fuzz run "$target" --fuzz-dir core/fuzz "$fuzz_scratch/$target" "core/fuzz/corpus/$target" \
        -- -max_total_time=10 -max_len=8192; then
        echo "test.sh: fuzz target $target failed; the input is in core/fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
