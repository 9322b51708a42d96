#!/bin/bash
# Builds the sealed inference appliance image with kiwi-ng, uploads its disk to an EBS snapshot with coldsnap,
# registers it as a NitroTPM attestable AMI (UEFI, TPM 2.0, IMDSv2) and publishes its reference measurements as
# tags on the AMI, under the tag keys of the library (MEASUREMENT_TAGS in lib/shared/measurements.ts).
#
# Prints the AMI id and its measurements as JSON on stdout, as `sealed-inference measurements` does; everything
# else goes to stderr. Re-running with the same recipe version and the same measurements reuses the AMI.
#
# Run on an Amazon Linux 2023 build host, as root (kiwi needs loop devices), from a checkout where
# `npm run build` has run (it bundles the appliance). See docs/image-build.md.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$script_dir/.." && pwd)"

KIWI_MINIMUM_VERSION=10.2.21
OLLAMA_RELEASES=https://github.com/ollama/ollama/releases/download

usage() {
    cat <<USAGE
Usage: $(basename "$0") --ollama-version <version> --ollama-sha256 <sha256> [options]

Required (or the environment variables in brackets):
  --ollama-version <v>        Ollama release to install, e.g. 0.12.3 [OLLAMA_VERSION]
  --ollama-sha256 <hex>       SHA-256 of that release's archive, from a source you trust [OLLAMA_SHA256]

Options:
  --ollama-asset <name>       release archive name (default: ollama-linux-amd64.tgz) [OLLAMA_ASSET]
  --profile gpu               build the GPU profile (NVIDIA driver and CUDA runtime)
  --nvidia-driver-version <v> the exact nvidia-driver version the gpu profile must install [NVIDIA_DRIVER_VERSION]
  --description <dir>         kiwi description (default: $script_dir/sealed-inference-appliance)
  --appliance <file>          appliance bundle (default: $repo_dir/assets/appliance/appliance.js)
  --target-dir <dir>          build output (default: ./image-build)
  --region <region>           AWS Region (default: the AWS CLI's: AWS_REGION or the profile's)
  --uefi-data <file>          UEFI variable store for Secure Boot, passed to register-image --uefi-data
  --measurements <file>       with --dry-run: a pcr_measurements.json to compute the tags from
  --dry-run                   print every command that would run, one a line prefixed '+ ', and run none
  -h, --help                  this help

Secure Boot: set SECURE_BOOT_PK (and SECURE_BOOT_KEK, SECURE_BOOT_DB, SECURE_BOOT_DBX, SECURE_BOOT_SIGNING_KEY,
SECURE_BOOT_SIGNING_CERT) for edit_boot_install.sh; the image then also publishes PCR7.
USAGE
}

fail() {
    echo "build-and-publish.sh: $*" >&2
    exit 1
}

note() {
    echo "build-and-publish.sh: $*" >&2
}

ollama_version="${OLLAMA_VERSION:-}"
ollama_sha256="${OLLAMA_SHA256:-}"
ollama_asset="${OLLAMA_ASSET:-ollama-linux-amd64.tgz}"
nvidia_driver_version="${NVIDIA_DRIVER_VERSION:-}"
profile=""
description="$script_dir/sealed-inference-appliance"
appliance="$repo_dir/assets/appliance/appliance.js"
target_dir="$PWD/image-build"
region=""
uefi_data=""
measurements_fixture=""
dry_run=false

while [[ $# -gt 0 ]]; do
    option="$1"
    case "$option" in
        -h | --help) usage; exit 0 ;;
        --dry-run) dry_run=true; shift; continue ;;
    esac
    [[ $# -ge 2 ]] || fail "$option needs a value (see --help)"
    case "$option" in
        --ollama-version) ollama_version="$2" ;;
        --ollama-sha256) ollama_sha256="$2" ;;
        --ollama-asset) ollama_asset="$2" ;;
        --profile) profile="$2" ;;
        --nvidia-driver-version) nvidia_driver_version="$2" ;;
        --description) description="$2" ;;
        --appliance) appliance="$2" ;;
        --target-dir) target_dir="$2" ;;
        --region) region="$2" ;;
        --uefi-data) uefi_data="$2" ;;
        --measurements) measurements_fixture="$2" ;;
        *) fail "unknown option $option (see --help)" ;;
    esac
    shift 2
done

#--------------------------------------------------------------------------------------------------------------
# Inputs
#--------------------------------------------------------------------------------------------------------------
[[ -n "$ollama_version" ]] || fail "the Ollama version is required: pass --ollama-version <version> (or set \
OLLAMA_VERSION), the release whose archive checksum you pass with --ollama-sha256"
[[ "$ollama_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
    || fail "--ollama-version must look like 0.12.3, got '$ollama_version'"
[[ -n "$ollama_sha256" ]] || fail "the SHA-256 of the Ollama $ollama_version archive is required: pass \
--ollama-sha256 <hex> (or set OLLAMA_SHA256), taken from a source you trust (the release's sha256sum.txt, checked)"
ollama_sha256="${ollama_sha256,,}"
[[ "$ollama_sha256" =~ ^[0-9a-f]{64}$ ]] || fail "--ollama-sha256 must be 64 hex characters, got '$ollama_sha256'"
[[ "$ollama_asset" =~ ^[A-Za-z0-9._-]+$ ]] || fail "--ollama-asset must be a file name, got '$ollama_asset'"
case "$profile" in
    "") ;;
    gpu)
        [[ -n "$nvidia_driver_version" ]] || fail "the gpu profile needs the exact NVIDIA driver version: pass \
--nvidia-driver-version <version> (or set NVIDIA_DRIVER_VERSION)"
        [[ "$nvidia_driver_version" =~ ^[0-9][0-9.]*$ ]] \
            || fail "--nvidia-driver-version must be a version like 570.172.08, got '$nvidia_driver_version'"
        ;;
    *) fail "unknown profile '$profile': the only profile is gpu" ;;
esac
[[ -f "$description/appliance.kiwi" ]] || fail "no kiwi description at $description (appliance.kiwi missing)"
[[ -f "$appliance" ]] || fail "the appliance bundle $appliance is missing: run npm run build"
measurements_module="$repo_dir/dist/lib/shared/measurements.js"
[[ -f "$measurements_module" ]] || fail "$measurements_module is missing: run npm run build"
[[ -z "$uefi_data" || -f "$uefi_data" ]] || fail "--uefi-data $uefi_data is not a file"
if [[ -n "$measurements_fixture" ]]; then
    [[ "$dry_run" == true ]] || fail "--measurements is only for --dry-run; a real run measures what it builds"
    [[ -f "$measurements_fixture" ]] || fail "--measurements $measurements_fixture is not a file"
fi

#--------------------------------------------------------------------------------------------------------------
# Prerequisites: say exactly what is missing
#--------------------------------------------------------------------------------------------------------------
declare -A install_hint=(
    [kiwi-ng]="kiwi-ng >= $KIWI_MINIMUM_VERSION (on AL2023: dnf install kiwi-cli, or pip install kiwi)"
    [coldsnap]="coldsnap (cargo install --locked coldsnap)"
    [aws]="the AWS CLI v2"
    [jq]="jq (dnf install jq)"
    [node]="Node.js >= 20"
    [sha256sum]="sha256sum (coreutils)"
    [curl]="curl"
    [tar]="tar"
    [mkfs.erofs]="mkfs.erofs, for kiwi's erofs root (dnf install erofs-utils)"
    [veritysetup]="veritysetup, for kiwi's dm-verity (dnf install cryptsetup)"
)
missing=()
for tool in node jq sha256sum kiwi-ng coldsnap aws curl tar mkfs.erofs veritysetup; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool: install ${install_hint[$tool]}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$dry_run" == true ]]; then
        for line in "${missing[@]}"; do note "a real run needs $line"; done
        for tool in node jq sha256sum; do
            command -v "$tool" >/dev/null 2>&1 || fail "missing $tool: install ${install_hint[$tool]}"
        done
    else
        printf 'build-and-publish.sh: missing %s\n' "${missing[@]}" >&2
        exit 1
    fi
fi
if [[ "$dry_run" == false ]]; then
    kiwi_version="$(kiwi-ng --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)" \
        || fail "cannot read the version of kiwi-ng"
    [[ "$(printf '%s\n%s\n' "$KIWI_MINIMUM_VERSION" "$kiwi_version" | sort -V | head -n1)" == "$KIWI_MINIMUM_VERSION" ]] \
        || fail "kiwi-ng is $kiwi_version; the description needs $KIWI_MINIMUM_VERSION or later (erofs overlay root)"
    [[ "$(id -u)" == 0 ]] || fail "run as root: kiwi-ng needs loop devices and mounts to build a disk image"
fi

#--------------------------------------------------------------------------------------------------------------
# Running commands, or printing them
#--------------------------------------------------------------------------------------------------------------
# run <command...>: runs it, or with --dry-run prints it (shell-quoted) on stdout and returns no output. The
# printing goes to file descriptor 3, the script's stdout, so that it shows even when the output is captured.
exec 3>&1
run() {
    if [[ "$dry_run" == true ]]; then
        local word line="+"
        for word in "$@"; do
            if [[ "$word" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
                line+=" $word"
            else
                line+=" '${word//"'"/"'\\''"}'"
            fi
        done
        echo "$line" >&3
    else
        "$@"
    fi
}

aws_region_args=()
[[ -z "$region" ]] || aws_region_args=(--region "$region")

recipe_version="$(sed -n 's:.*<version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</version>.*:\1:p' \
    "$description/appliance.kiwi" | head -n1)"
[[ -n "$recipe_version" ]] || fail "no <version> in $description/appliance.kiwi"
tag_keys="$(node -e 'process.stdout.write(JSON.stringify(require(process.argv[1]).MEASUREMENT_TAGS))' \
    "$measurements_module")"
tag_key() { jq -r --arg name "$1" '.[$name] // error("MEASUREMENT_TAGS has no \($name)")' <<<"$tag_keys"; }

#--------------------------------------------------------------------------------------------------------------
# 1. Ollama: download the pinned archive and check it (never a script piped into a shell)
#--------------------------------------------------------------------------------------------------------------
work_dir="$target_dir/work"
archive="$work_dir/$ollama_asset"
run mkdir -p "$work_dir"
if [[ "$dry_run" == false && -f "$archive" ]] && echo "$ollama_sha256  $archive" | sha256sum --check --status; then
    note "reusing the verified $archive"
else
    run curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 --output "$archive" \
        "$OLLAMA_RELEASES/v$ollama_version/$ollama_asset"
    if [[ "$dry_run" == true ]]; then
        echo "+ sha256sum --check --strict <<< '$ollama_sha256  $archive'"
    elif ! echo "$ollama_sha256  $archive" | sha256sum --check --strict --quiet; then
        rm -f "$archive"
        fail "the downloaded $ollama_asset of Ollama $ollama_version does not have the SHA-256 $ollama_sha256"
    fi
fi

#--------------------------------------------------------------------------------------------------------------
# 2. Stage the description with the build inputs in its root/ overlay, and build
#--------------------------------------------------------------------------------------------------------------
staged="$work_dir/description"
build_inputs="$staged/root/usr/lib/sealed-inference/build-inputs.env"
run rm -rf "$staged"
run cp -a "$description" "$staged"
run install -D -m 0644 "$appliance" "$staged/root/opt/sealed-inference/appliance.js"
run install -D -m 0644 "$archive" "$staged/root/usr/lib/sealed-inference/$ollama_asset"
inputs="RECIPE_VERSION=$recipe_version
OLLAMA_VERSION=$ollama_version
OLLAMA_SHA256=$ollama_sha256
OLLAMA_ASSET=$ollama_asset"
[[ -z "$profile" ]] || inputs+="
NVIDIA_DRIVER_VERSION=$nvidia_driver_version"
if [[ "$dry_run" == true ]]; then
    echo "+ write $build_inputs: ${inputs//$'\n'/ }"
else
    printf '%s\n' "$inputs" > "$build_inputs"
fi

image_dir="$target_dir/image"
kiwi_args=()
[[ -z "$profile" ]] || kiwi_args=(--profile "$profile")
run rm -rf "$image_dir"
run kiwi-ng "${kiwi_args[@]}" system build --description "$staged" --target-dir "$image_dir"

#--------------------------------------------------------------------------------------------------------------
# 3. The measurements the build wrote (edit_boot_install.sh)
#--------------------------------------------------------------------------------------------------------------
if [[ -n "$measurements_fixture" ]]; then
    measurements="$measurements_fixture"
else
    measurements="$image_dir/pcr_measurements.json"
fi
pcr4="" pcr7="" pcr12="" measurements_sha256=""
if [[ -f "$measurements" ]]; then
    # The library's own checks, the ones the deploy-time reader applies to the tags: SHA-384 values that pin an
    # image. One line each for PCR4, PCR7 and PCR12, lower case, empty where absent; or the reason they fail.
    # shellcheck disable=SC2016 # JavaScript, not shell, expands ${...} here
    pinned="$(node -e '
        const { checkPinsImage, normalizePcrValue } = require(process.argv[1]);
        const file = process.argv[2];
        try {
            const given = JSON.parse(require("fs").readFileSync(file, "utf8")).Measurements ?? {};
            const pcr = (name) => given[name] === undefined ? undefined : normalizePcrValue(`${name} in ${file}`, given[name]);
            const pcrs = { pcr4: pcr("PCR4"), pcr7: pcr("PCR7"), pcr12: pcr("PCR12") };
            checkPinsImage(file, pcrs);
            console.log([pcrs.pcr4, pcrs.pcr7, pcrs.pcr12].map((value) => value ?? "").join("\n"));
        } catch (error) {
            console.log(error.message);
            process.exit(1);
        }
    ' "$measurements_module" "$measurements")" || fail "$pinned"
    { read -r pcr4; read -r pcr7; read -r pcr12; } <<<"$pinned"
    measurements_sha256="$(sha256sum "$measurements" | cut -d' ' -f1)"
elif [[ "$dry_run" == true ]]; then
    pcr4="<PCR4 of pcr_measurements.json>" pcr12="<PCR12 of pcr_measurements.json>"
    measurements_sha256="<SHA-256 of pcr_measurements.json>"
else
    fail "the build wrote no $measurements (edit_boot_install.sh)"
fi

#--------------------------------------------------------------------------------------------------------------
# 4. Register the AMI, unless one of this recipe version and these measurements exists
#--------------------------------------------------------------------------------------------------------------
# The name derives from what the image is: the recipe version and its measurements (the file's SHA-256).
name_suffix="${measurements_sha256:0:16}"
[[ "$measurements_sha256" != "<"* ]] || name_suffix="<SHA-256 prefix>"
name="sealed-inference-appliance-$recipe_version${profile:+-$profile}-$name_suffix"

image_id=""
existing="$(run aws "${aws_region_args[@]}" ec2 describe-images --owners self \
    --filters "Name=name,Values=$name" --query 'Images[0].ImageId' --output text)"
if [[ -n "$existing" && "$existing" != None ]]; then
    image_id="$existing"
    note "reusing $image_id, already registered as $name"
fi

if [[ -z "$image_id" ]]; then
    if [[ "$dry_run" == true ]]; then
        raw_disk="$image_dir/<image>.raw"
    else
        shopt -s nullglob
        raw_disks=("$image_dir"/*.raw)
        shopt -u nullglob
        [[ ${#raw_disks[@]} -eq 1 ]] || fail "expected one raw disk image in $image_dir, found ${#raw_disks[@]}"
        raw_disk="${raw_disks[0]}"
    fi
    snapshot_id="$(run coldsnap "${aws_region_args[@]}" upload --wait --description "$name" "$raw_disk")"
    [[ "$dry_run" == false ]] || snapshot_id="<snapshot id>"
    [[ "$snapshot_id" =~ ^snap-[0-9a-f]+$ || "$dry_run" == true ]] \
        || fail "coldsnap upload returned no snapshot id: '$snapshot_id'"
    register_args=(
        --name "$name"
        --description "Sealed inference appliance $recipe_version${profile:+ ($profile)}, attestable (NitroTPM)"
        --architecture x86_64
        --virtualization-type hvm
        --boot-mode uefi
        --tpm-support v2.0
        --imds-support v2.0
        --ena-support
        --root-device-name /dev/xvda
        --block-device-mappings "DeviceName=/dev/xvda,Ebs={SnapshotId=$snapshot_id,VolumeType=gp3,DeleteOnTermination=true}"
    )
    [[ -z "$uefi_data" ]] || register_args+=(--uefi-data "file://$uefi_data")
    image_id="$(run aws "${aws_region_args[@]}" ec2 register-image "${register_args[@]}" \
        --query ImageId --output text)"
    [[ "$dry_run" == false ]] || image_id="<image id>"
    [[ "$image_id" =~ ^ami-[0-9a-f]+$ || "$dry_run" == true ]] \
        || fail "register-image returned no image id: '$image_id'"
    [[ "$dry_run" == true ]] || note "registered $image_id as $name"
fi

#--------------------------------------------------------------------------------------------------------------
# 5. Publish the measurements as tags (every run: a re-run repairs an interrupted one)
#--------------------------------------------------------------------------------------------------------------
tags=()
[[ -z "$pcr4" ]] || tags+=("Key=$(tag_key pcr4),Value=$pcr4")
[[ -z "$pcr7" ]] || tags+=("Key=$(tag_key pcr7),Value=$pcr7")
[[ -z "$pcr12" ]] || tags+=("Key=$(tag_key pcr12),Value=$pcr12")
tags+=("Key=$(tag_key recipeVersion),Value=$recipe_version")
tags+=("Key=$(tag_key measurementsSha256),Value=$measurements_sha256")
run aws "${aws_region_args[@]}" ec2 create-tags --resources "$image_id" --tags "${tags[@]}"
run aws "${aws_region_args[@]}" ec2 wait image-available --image-ids "$image_id"

if [[ "$dry_run" == false ]]; then
    jq -n --arg imageId "$image_id" --arg pcr4 "$pcr4" --arg pcr7 "$pcr7" --arg pcr12 "$pcr12" \
        '{imageId: $imageId}
         + (if $pcr4 != "" then {pcr4: $pcr4} else {} end)
         + (if $pcr7 != "" then {pcr7: $pcr7} else {} end)
         + (if $pcr12 != "" then {pcr12: $pcr12} else {} end)'
fi
