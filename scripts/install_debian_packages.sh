#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are not installed yet (idempotent, fast when all present).
set -euo pipefail
list=${1:-envs/debian-packages.txt}
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list")
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "Debian packages: all ${#wanted[@]} present"
    exit 0
fi
echo "Debian packages: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
