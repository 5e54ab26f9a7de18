#!/bin/sh
# System packages the video tests need (Debian/Ubuntu): GStreamer with the RTSP server and its
# GObject introspection data, reached from /usr/bin/python3 through python3-gi, and the Python plugin
# loader the `fornetseg` element is loaded by (setup/gst-env.sh).
# Idempotent: installs only what is missing. As root it runs apt-get; otherwise it prints the
# exact command and exits 1. Set FORNET_SKIP_SYSTEM_PACKAGES=1 to skip the check entirely.
set -eu

PACKAGES="gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
gstreamer1.0-plugins-ugly gstreamer1.0-rtsp gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0 gstreamer1.0-python3-plugin-loader"

if [ "${FORNET_SKIP_SYSTEM_PACKAGES:-0}" = "1" ]; then
    exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "system-packages: not a Debian-based system; install GStreamer 1.x (base, good, bad, ugly)," \
         "its RTSP server with GObject introspection data, and PyGObject by hand" >&2
    exit 0
fi

missing=""
for package in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != "0" ]; then
    echo "system-packages: missing:$missing" >&2
    echo "install them with:  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "system-packages: installing$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
