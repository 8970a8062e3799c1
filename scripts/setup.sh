#!/usr/bin/env bash
# Install what lumio needs to build, test and benchmark, from Debian's packages.
# Idempotent: installs only what is missing. Needs root (or sudo) when anything is missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config clang libclang-rt-14-dev
    liburing-dev libzstd-dev libxxhash-dev
    libcurl4-openssl-dev libssl-dev openssl libjansson-dev libblosc-dev zlib1g-dev libisal-dev
    xxhash fio python3 curl nginx-light aria2 python3-fsspec python3-aiohttp python3-requests
    python3-zarr python3-numpy python3-dev python3-pytest python3-setuptools python3-pip python3-torch time
    libwebsockets-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libmicrohttpd-dev
    python3-websockets chromium austin
)

missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'install ok installed'* ]] || missing+=("$p")
done
# Node and npm run test tools from the npm registry (s3rver, zarrita). A
# machine may have them from elsewhere (NodeSource): take Debian's only when
# the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
