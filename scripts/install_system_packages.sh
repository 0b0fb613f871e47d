#!/usr/bin/env bash
# Installs the Debian packages the mesh and its tests use, when they are missing:
#   prometheus (Prometheus + promtool), chromium (browser tests), nghttp2-client (h2load),
#   nodejs and npm (the web client's build and tests), iproute2 and util-linux (`ip` and
#   `unshare`: name-resolution tests run the pipeline in a private network namespace).
# Nothing is started as a system service: the project starts Prometheus itself.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v npm >/dev/null || need+=(nodejs npm)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
$sudo apt-get update -q -o DPkg::Lock::Timeout=600
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
  -o DPkg::Lock::Timeout=600 "${need[@]}"
# The Debian package enables a Prometheus system service; the mesh runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $sudo systemctl disable --now prometheus || true
fi
