#!/bin/bash
# kiwi's editbootinstall hook: runs on the build host once the boot loader is installed, with the disk image's
# partitions mounted. Arguments: <disk image file> <root device>.
#
# 1. Makes the dracut-built UKI the only boot binary: it replaces the systemd-boot loader as EFI/BOOT/BOOTX64.EFI,
#    and the loader, its entries and EFI/Linux are removed. Firmware then measures exactly one application into
#    PCR4, and no loader remains that could read a command line or another entry from UEFI variables.
# 2. Optionally signs the UKI for UEFI Secure Boot (before measuring: PCR4 covers the signed binary).
# 3. Writes the reference measurements next to the disk image: pcr_measurements.json, from the image's own
#    nitro-tpm-pcr-compute (>= 1.1.0, which reports PCR12).
#
# Secure Boot (all optional; without SECURE_BOOT_PK the image is a standard-boot image and the file carries
# PCR4 and PCR12 only, PCR7 being meaningless without the keys):
#   SECURE_BOOT_PK, SECURE_BOOT_KEK, SECURE_BOOT_DB, SECURE_BOOT_DBX  EFI signature lists (ESL files) of the
#       variable store the AMI is registered with (register-image --uefi-data); passed to nitro-tpm-pcr-compute
#       as --PK, --KEK, --db, --dbx to compute PCR7
#   SECURE_BOOT_SIGNING_KEY, SECURE_BOOT_SIGNING_CERT  key and certificate (in db) that sign the UKI (sbsign)
set -euo pipefail

fail() {
    echo "edit_boot_install.sh: $*" >&2
    exit 1
}

disk_image="${1:?usage: edit_boot_install.sh <disk image> <root device>}"
root_device="${2:?usage: edit_boot_install.sh <disk image> <root device>}"
measurements="$(dirname "$disk_image")/pcr_measurements.json"

[[ -b "$root_device" ]] || fail "root device $root_device is not a block device"
root_mount="$(findmnt --noheadings --output TARGET --source "$root_device" | head -n1)"
[[ -n "$root_mount" ]] || fail "root device $root_device is not mounted"
efi="$root_mount/boot/efi"
mountpoint --quiet "$efi" || fail "the EFI partition is not mounted at $efi"

uki="$efi/EFI/Linux/kiwi.efi"
[[ -f "$uki" ]] || { find "$efi" -type f >&2; fail "no UKI at $uki"; }
boot_binary="$efi/EFI/BOOT/BOOTX64.EFI"

# The UKI becomes the removable-media boot path, the one binary the firmware starts.
install -D -m 0644 "$uki" "$boot_binary"
rm -rf "$efi/EFI/Linux" "$efi/EFI/systemd" "$efi/loader"
find "$efi/EFI/BOOT" -type f ! -name BOOTX64.EFI -delete
remaining="$(find "$efi" -type f -iname '*.efi')"
[[ "$remaining" == "$boot_binary" ]] || fail "EFI binaries other than the UKI remain: $remaining"

if [[ -n "${SECURE_BOOT_SIGNING_KEY:-}" || -n "${SECURE_BOOT_SIGNING_CERT:-}" ]]; then
    [[ -f "${SECURE_BOOT_SIGNING_KEY:-}" && -f "${SECURE_BOOT_SIGNING_CERT:-}" ]] \
        || fail "set both SECURE_BOOT_SIGNING_KEY and SECURE_BOOT_SIGNING_CERT to existing files"
    command -v sbsign >/dev/null || fail "sbsign is needed to sign the UKI (package sbsigntools)"
    sbsign --key "$SECURE_BOOT_SIGNING_KEY" --cert "$SECURE_BOOT_SIGNING_CERT" \
        --output "$boot_binary.signed" "$boot_binary"
    mv "$boot_binary.signed" "$boot_binary"
fi

pcr_compute="$root_mount/usr/bin/nitro-tpm-pcr-compute"
[[ -x "$pcr_compute" ]] || fail "$pcr_compute is missing (package aws-nitro-tpm-tools)"
arguments=(--image "$boot_binary")
secure_boot=false
if [[ -n "${SECURE_BOOT_PK:-}" ]]; then
    secure_boot=true
    for variable in SECURE_BOOT_PK SECURE_BOOT_KEK SECURE_BOOT_DB SECURE_BOOT_DBX; do
        file="${!variable:-}"
        [[ -z "$file" || -f "$file" ]] || fail "$variable=$file is not a file"
    done
    arguments+=(--PK "$SECURE_BOOT_PK")
    [[ -z "${SECURE_BOOT_KEK:-}" ]] || arguments+=(--KEK "$SECURE_BOOT_KEK")
    [[ -z "${SECURE_BOOT_DB:-}" ]] || arguments+=(--db "$SECURE_BOOT_DB")
    [[ -z "${SECURE_BOOT_DBX:-}" ]] || arguments+=(--dbx "$SECURE_BOOT_DBX")
fi

computed="$(mktemp)"
trap 'rm -f "$computed"' EXIT
"$pcr_compute" "${arguments[@]}" > "$computed" || fail "nitro-tpm-pcr-compute failed"
if [[ "$secure_boot" == true ]]; then
    jq --exit-status '.Measurements | has("PCR4") and has("PCR7") and has("PCR12")' "$computed" >/dev/null \
        || fail "nitro-tpm-pcr-compute reported no PCR4, PCR7 and PCR12: $(cat "$computed")"
    cp "$computed" "$measurements"
else
    jq --exit-status '.Measurements | has("PCR4") and has("PCR12")' "$computed" >/dev/null \
        || fail "nitro-tpm-pcr-compute reported no PCR4 and PCR12 (1.1.0 or later needed): $(cat "$computed")"
    jq '.Measurements |= del(.PCR7)' "$computed" > "$measurements"
fi
echo "edit_boot_install.sh: measurements of $boot_binary in $measurements:" >&2
cat "$measurements" >&2
