#!/bin/bash
# The system tools the test suite needs besides Node.js, from Debian's repositories: installed when missing if
# running as root (as CI does), else the exact install command is printed and the run fails. Tests never skip.
#   ShellCheck    lint of every shell script (package shellcheck)
#   jq            used by image-recipes/build-and-publish.sh
#   swtpm         a real TPM 2.0 (software) for the appliance's PCR15 and attestation tests
#   tpm2-tools    tpm2_pcrextend / tpm2_pcrread, as the appliance runs them on the instance
#   chromium      the appliance's chat UI in a headless browser (driven by playwright-core)
#   openssl       an independent CMS implementation the KMS recipient envelope is checked against
#   HAProxy       a TCP load balancer in front of appliance doubles, as the fleet's NLB is in front of its instances
#   python3-*     what kiwi-ng (provisioned by scripts/provision-kiwi.sh) needs of Debian's Python 3
set -euo pipefail

# command -> Debian package
declare -A packages=(
    [shellcheck]=shellcheck
    [jq]=jq
    [swtpm]=swtpm
    [tpm2_pcrextend]=tpm2-tools
    [chromium]=chromium
    [openssl]=openssl
    [haproxy]=haproxy
)
# Python module of Debian's /usr/bin/python3 -> Debian package
declare -A python_packages=(
    [lxml]=python3-lxml
    [cerberus]=python3-cerberus
    [progressbar2]=python3-progressbar2
    [requests]=python3-requests
    [simplejson]=python3-simplejson
    [yaml]=python3-yaml
)
missing=()
for command in "${!packages[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
for module in "${!python_packages[@]}"; do
    /usr/bin/python3 -c "import $module" >/dev/null 2>&1 || missing+=("${python_packages[$module]}")
done

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
