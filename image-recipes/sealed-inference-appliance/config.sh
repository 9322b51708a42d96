#!/bin/bash
# Runs inside the image root once the packages are installed and root/ is copied in (kiwi's config stage).
# Everything here is baked into the read-only root, so everything here is measured.
set -euo pipefail

# kiwi writes the selected profiles to /.profile (kiwi_profiles, comma separated).
kiwi_profiles=""
if [[ -f /.profile ]]; then
    # shellcheck disable=SC1091
    source /.profile
fi

fail() {
    echo "config.sh: $*" >&2
    exit 1
}

version_at_least() { # version_at_least <have> <need>
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

#--------------------------------------------------------------------------------------------------------------
# Build inputs, written by build-and-publish.sh into the staged copy of this description: the recipe version
# and the pinned Ollama release with its SHA-256 (checked once on the build host, once more here).
#--------------------------------------------------------------------------------------------------------------
BUILD_INPUTS=/usr/lib/sealed-inference/build-inputs.env
[[ -f "$BUILD_INPUTS" ]] || fail "$BUILD_INPUTS is missing: build the image with image-recipes/build-and-publish.sh"
# shellcheck disable=SC1090
source "$BUILD_INPUTS"
OLLAMA_VERSION="${OLLAMA_VERSION:?OLLAMA_VERSION missing from $BUILD_INPUTS}"
OLLAMA_SHA256="${OLLAMA_SHA256:?OLLAMA_SHA256 missing from $BUILD_INPUTS}"
OLLAMA_ASSET="${OLLAMA_ASSET:?OLLAMA_ASSET missing from $BUILD_INPUTS}"
[[ "$OLLAMA_SHA256" =~ ^[0-9a-f]{64}$ ]] || fail "OLLAMA_SHA256 must be 64 lower-case hex characters"

#--------------------------------------------------------------------------------------------------------------
# Ollama from its release archive, verified, unpacked to /opt/ollama. The archive itself is not kept.
#--------------------------------------------------------------------------------------------------------------
archive="/usr/lib/sealed-inference/$OLLAMA_ASSET"
[[ -f "$archive" ]] || fail "$archive is missing: build-and-publish.sh downloads it"
echo "$OLLAMA_SHA256  $archive" | sha256sum --check --strict --quiet \
    || fail "$archive does not have the pinned SHA-256 $OLLAMA_SHA256 (Ollama $OLLAMA_VERSION)"
install -d -m 0755 /opt/ollama
tar -xf "$archive" -C /opt/ollama --no-same-owner
rm -f "$archive"
[[ -x /opt/ollama/bin/ollama ]] || fail "the Ollama archive has no bin/ollama"
chown -R root:root /opt/ollama

#--------------------------------------------------------------------------------------------------------------
# The appliance bundle, copied in by build-and-publish.sh; Node.js 22 from the distribution.
#--------------------------------------------------------------------------------------------------------------
[[ -f /opt/sealed-inference/appliance.js ]] || fail "/opt/sealed-inference/appliance.js is missing"
chown -R root:root /opt/sealed-inference
chmod -R go-w /opt/sealed-inference
if [[ ! -e /usr/bin/node && -x /usr/bin/node-22 ]]; then
    alternatives --set node /usr/bin/node-22 || ln -s node-22 /usr/bin/node
fi
node_version="$(/usr/bin/node --version)" || fail "/usr/bin/node does not run"
[[ "$node_version" == v22.* ]] || fail "/usr/bin/node is $node_version, not Node.js 22 (package nodejs22)"

#--------------------------------------------------------------------------------------------------------------
# NitroTPM tools: nitro-tpm-pcr-compute >= 1.1.0 reports PCR12, which a standard-boot policy needs.
#--------------------------------------------------------------------------------------------------------------
tpm_tools_version="$(rpm -q --queryformat '%{VERSION}' aws-nitro-tpm-tools)" \
    || fail "aws-nitro-tpm-tools is not installed"
version_at_least "$tpm_tools_version" 1.1.0 \
    || fail "aws-nitro-tpm-tools is $tpm_tools_version; 1.1.0 or later is needed (PCR12)"
command -v tpm2_pcrextend >/dev/null || fail "tpm2-tools is not installed"

#--------------------------------------------------------------------------------------------------------------
# GPU profile: the NVIDIA driver must be exactly the pinned version (NVIDIA's repository is not a snapshot).
#--------------------------------------------------------------------------------------------------------------
if [[ ",$kiwi_profiles," == *",gpu,"* ]]; then
    NVIDIA_DRIVER_VERSION="${NVIDIA_DRIVER_VERSION:?the gpu profile needs NVIDIA_DRIVER_VERSION in $BUILD_INPUTS}"
    driver_version="$(rpm -q --queryformat '%{VERSION}' nvidia-driver)" || fail "nvidia-driver is not installed"
    [[ "$driver_version" == "$NVIDIA_DRIVER_VERSION" ]] \
        || fail "nvidia-driver is $driver_version, not the pinned $NVIDIA_DRIVER_VERSION"
fi

#--------------------------------------------------------------------------------------------------------------
# No way in: none of the remote access packages, no getty, no shell for anyone, root locked.
#--------------------------------------------------------------------------------------------------------------
# The description's <ignore> list, checked again in the root that was built.
for package in openssh-server amazon-ssm-agent cloud-init cloud-init-cfg-ec2 ec2-instance-connect; do
    if rpm -q "$package" >/dev/null 2>&1; then
        fail "$package is installed; it must not be"
    fi
done
systemctl mask getty@.service serial-getty@.service console-getty.service container-getty@.service \
    debug-shell.service emergency.service rescue.service
systemctl set-default multi-user.target

passwd --lock root
usermod --shell /usr/sbin/nologin root
# No account may have a usable password: every hash field must be locked ('!' or '*' first) or empty-locked.
if awk -F: '$2 != "" && $2 !~ /^[!*]/ { found = 1; print $1 } END { exit !found }' /etc/shadow; then
    fail "the accounts above have a password"
fi
if awk -F: '$2 == "" { found = 1; print $1 } END { exit !found }' /etc/shadow; then
    fail "the accounts above have an empty password"
fi

#--------------------------------------------------------------------------------------------------------------
# Service accounts and services.
#--------------------------------------------------------------------------------------------------------------
getent group tss >/dev/null || fail "group tss is missing (package tpm2-tss)"
systemd-sysusers /usr/lib/sysusers.d/sealed-inference.conf
systemctl enable nftables.service
systemctl enable 'var-lib-sealed\x2dinference.mount' var-lib-ollama.mount
systemctl enable ollama.service sealed-inference-appliance.service

# The image has no writable disk: nothing to grow, nothing to clean up at boot.
rm -rf /var/cache/dnf/* /var/log/dnf* /etc/ssh/ssh_host_*
