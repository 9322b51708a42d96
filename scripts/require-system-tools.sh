#!/bin/bash
# The system tools the test suite needs besides Node.js, from Debian's repositories: installed when missing if
# running as root (as CI does), else the exact install command is printed and the run fails. Tests never skip.
#   ShellCheck    lint of every shell script (package shellcheck)
#   jq            used by image-recipes/build-and-publish.sh
set -euo pipefail

missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v jq >/dev/null 2>&1 || missing+=(jq)

[[ ${#missing[@]} -eq 0 ]] && exit 0

command="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
    echo "require-system-tools: missing ${missing[*]}. Install them as root:" >&2
    echo "  $command" >&2
    exit 1
fi
echo "require-system-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
