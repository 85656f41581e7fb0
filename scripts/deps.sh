#!/bin/bash
# Installs the Debian (bookworm) packages agkit needs to build and test.
# Usage: scripts/deps.sh          install what is missing (needs root)
#        scripts/deps.sh --list   print the package list
set -euo pipefail
PKGS=(
	build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libsodium-dev libssl-dev libzstd-dev libjansson-dev libarchive-dev libcurl4-openssl-dev
	libpcre2-dev libutf8proc-dev libisal-dev libmicrohttpd-dev
	python3 python3-numpy python3-jinja2 python3-venv zstd minisign skopeo docker-registry nginx openssl apache2-utils
	curl ca-certificates file systemd ansible openssh-server
)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${PKGS[@]}"; exit 0; fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}; run as root: sudo scripts/deps.sh" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
