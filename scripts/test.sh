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
# Tribler's PyQt5 GUI under Xvfb (tests/tests/tribler_gui.rs): the X server, the libraries Qt's
# xcb platform plugin loads, a font, `ip` for the test's network namespace, and what pip needs
# to build the PyGObject that tribler==7.13.1 pins (cairo and gobject-introspection headers).
packages+=(xvfb xauth iproute2 fonts-dejavu-core libx11-xcb1 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1
    libxkbcommon-x11-0 libgl1 libegl1 libfontconfig1 libdbus-1-3 libnss3 libasound2
    libcairo2-dev libgirepository1.0-dev pkg-config)
# The web UI's browser test (tests/tests/webui.rs): Debian's chromium and its WebDriver.
packages+=(chromium chromium-driver python3-venv)
# The port-mapping test (tests/tests/portmap.rs): a real UPnP IGD / NAT-PMP router, miniupnpd's
# nftables build (the binary alone: the service is in the `miniupnpd` package, not installed;
# the test runs its own copy inside network namespaces) and nft for the router's firewall.
packages+=(miniupnpd-nftables nftables)
# The SOCKS5 proxy tests (tests/tests/socks.rs): microsocks (CONNECT with a password), dante
# (UDP ASSOCIATE), iptables for the counters of direct traffic in the test's namespace (and
# for tests/tests/lsd.rs, which drops IPv4 multicast in its namespace to test LSD's IPv6 group).
packages+=(microsocks dante-server iptables)
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

# Tribler 7.13.1 from PyPI (its GUI is a real client of `shoal daemon`) in a venv kept outside
# the checkout, rebuilt only when missing or broken. Its pinned wheels need Python 3.8 or 3.9,
# which Debian 12 does not ship: a pyenv one is used (or SHOAL_TRIBLER_PYTHON). Without one the
# GUI test says so; under CI it then fails.
export SHOAL_TRIBLER_VENV=${SHOAL_TRIBLER_VENV:-/var/cache/shoal-tests/tribler-venv-7.13.1}
tribler_gui_ok() {
    "$SHOAL_TRIBLER_VENV/bin/python" -c 'import PyQt5.QtWidgets, tribler.gui.tribler_window' 2>/dev/null
}
if ! tribler_gui_ok; then
    tribler_python=${SHOAL_TRIBLER_PYTHON:-}
    if [[ -z $tribler_python ]]; then
        for candidate in /root/.pyenv/versions/3.9.*/bin/python /root/.pyenv/versions/3.8.*/bin/python \
            "$(command -v python3.9 || true)" "$(command -v python3.8 || true)"; do
            if [[ -x $candidate ]]; then
                tribler_python=$candidate
                break
            fi
        done
    fi
    if [[ -z $tribler_python ]]; then
        echo "test.sh: !!! no Python 3.8/3.9 found for Tribler's GUI (set SHOAL_TRIBLER_PYTHON): the GUI test cannot run !!!" >&2
    elif ! mkdir -p "$(dirname "$SHOAL_TRIBLER_VENV")" 2>/dev/null || [[ ! -w $(dirname "$SHOAL_TRIBLER_VENV") ]]; then
        echo "test.sh: !!! cannot create $SHOAL_TRIBLER_VENV (run as root): the GUI test cannot run !!!" >&2
    else
        echo "test.sh: creating $SHOAL_TRIBLER_VENV with $tribler_python (pip install tribler==7.13.1)" >&2
        rm -rf "$SHOAL_TRIBLER_VENV"
        if ! { "$tribler_python" -m venv "$SHOAL_TRIBLER_VENV" &&
            "$SHOAL_TRIBLER_VENV/bin/pip" install --quiet tribler==7.13.1 && tribler_gui_ok; }; then
            echo "test.sh: !!! could not install Tribler's GUI into $SHOAL_TRIBLER_VENV: the GUI test cannot run !!!" >&2
        fi
    fi
fi

# selenium from PyPI drives chromium for the web UI's browser test, from a venv kept outside
# the checkout (SHOAL_SELENIUM_VENV), made again only when missing or broken.
export SHOAL_SELENIUM_VENV=${SHOAL_SELENIUM_VENV:-/var/cache/shoal-tests/selenium-venv}
if ! "$SHOAL_SELENIUM_VENV/bin/python" -c 'import selenium' 2>/dev/null; then
    echo "test.sh: creating $SHOAL_SELENIUM_VENV (pip install selenium)" >&2
    rm -rf "$SHOAL_SELENIUM_VENV"
    if ! { mkdir -p "$(dirname "$SHOAL_SELENIUM_VENV")" && python3 -m venv "$SHOAL_SELENIUM_VENV" &&
        "$SHOAL_SELENIUM_VENV/bin/pip" install --quiet selenium; }; then
        echo "test.sh: !!! could not install selenium into $SHOAL_SELENIUM_VENV: the web UI's browser test cannot run !!!" >&2
    fi
fi
# The browser test's video is made by the static ffmpeg of PyPI's imageio-ffmpeg wheel (lighter
# than Debian's ffmpeg and its libraries), into the same venv.
if [[ -x $SHOAL_SELENIUM_VENV/bin/pip ]] && ! "$SHOAL_SELENIUM_VENV/bin/python" -c 'import imageio_ffmpeg' 2>/dev/null; then
    echo "test.sh: pip install imageio-ffmpeg into $SHOAL_SELENIUM_VENV" >&2
    "$SHOAL_SELENIUM_VENV/bin/pip" install --quiet imageio-ffmpeg ||
        echo "test.sh: !!! could not install imageio-ffmpeg: the web UI's browser test cannot make its video !!!" >&2
fi

# No module imports another that imports it back (issue #16), in any crate of the workspace.
python3 scripts/import_cycles.py core/src core/tests host/src runtime-smol/src runtime-tokio/src \
    api/src api/tests tests/src tests/tests tests/netsim/src

cargo build --release -p shoal-api

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
export SHOAL_BIN="$target_dir/release/shoal"
# Tests must not reach beyond loopback: features that would (public DHT bootstrap, public
# trackers, port mapping) stay off when this is set.
export SHOAL_LOCAL_ONLY=1
# Debian's python3 has the libtorrent module (a pyenv python on PATH would not).
export SHOAL_PYTHON=/usr/bin/python3

cargo test --workspace --release "$@"
# The daemon's REST suite once more, with the daemon on tokio (the run above has it on smol).
SHOAL_TEST_RUNTIME=tokio cargo test --release -p shoal-api "$@"

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
