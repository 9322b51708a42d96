#!/bin/bash
# Provisions kiwi-ng for the test suite, which loads and validates the image descriptions with it offline.
#
# The descriptions need kiwi 10 or later (erofs root, dnf4, dracut UKI); the Debian release this project builds on
# ships kiwi 9. Debian's current kiwi package (from unstable) is pure Python: its packages are downloaded with apt,
# which checks them against the Debian archive's signed index, and unpacked, without installing anything, into
# node_modules/.cache/kiwi-ng, then run with the system's Python 3 (whose modules scripts/require-system-tools.sh
# installs). Prints the path of the kiwi-ng it provides.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="$repo_dir/node_modules/.cache/kiwi-ng"
kiwi="$home/kiwi-ng"
suite=unstable
packages=(kiwi python3-typer python3-click python3-shellingham python3-typing-extensions)

fail() {
    echo "provision-kiwi: $*" >&2
    exit 1
}

if [[ ! -x "$kiwi" ]]; then
    command -v apt-get >/dev/null || fail "apt-get is needed to download kiwi from Debian"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -f "$keyring" ]] || fail "$keyring is missing: apt-get install debian-archive-keyring"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" >"$work/sources.list"
    apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::State::status=/dev/null"
         -o APT::Sandbox::User=root -o Debug::NoLocking=true)
    echo "provision-kiwi: downloading ${packages[*]} from Debian $suite" >&2
    apt-get "${apt[@]}" update -qq >&2 || fail "apt-get update of Debian $suite failed"
    (cd "$work/debs" && apt-get "${apt[@]}" download "${packages[@]}" >&2) || fail "downloading ${packages[*]} failed"
    rm -rf "$home.partial"
    mkdir -p "$home.partial"
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$home.partial/root"
        # shellcheck disable=SC2016 # dpkg-deb expands the fields, not the shell
        dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$home.partial/packages.txt"
    done
    cat >"$home.partial/kiwi-ng" <<'WRAPPER'
#!/bin/sh
# kiwi-ng from Debian's kiwi package, unpacked beside this script, on the system's Python 3.
here="$(cd "$(dirname "$0")" && pwd)"
PYTHONPATH="$here/root/usr/lib/python3/dist-packages" exec /usr/bin/python3 "$here/root/usr/bin/kiwi-ng" "$@"
WRAPPER
    chmod 0755 "$home.partial/kiwi-ng"
    rm -rf "$home"
    mv "$home.partial" "$home"
fi

"$kiwi" --version >/dev/null 2>&1 || fail "$kiwi does not run: $("$kiwi" --version 2>&1 | tail -n1)"
echo "$kiwi"
