#!/bin/sh
# Installs the Debian packages bpy (Blender as a Python module) loads at import and for headless
# rendering, but only those missing. Needs root (or sudo) when something is missing.
set -eu
PKGS="libx11-6 libxrender1 libxxf86vm1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "Installing system packages for Blender (bpy):$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
