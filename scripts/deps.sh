#!/usr/bin/env bash
# Installs what tokenledger needs to build and test on Debian 12, if missing.
# Safe to re-run: it asks apt only for packages that are not installed yet.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  capnproto libcapnp-dev liblmdb-dev lmdb-utils libsodium-dev librdkafka-dev
  libh2o-evloop-dev libcurl4-openssl-dev nlohmann-json3-dev zlib1g-dev doctest-dev
  python3 curl
  # integration tests: a real Kafka broker (scripts/kafka.sh) and kcat as a foreign client
  kcat maven openjdk-17-jre-headless
  # end-to-end tests: the web page in a real browser
  chromium fonts-liberation2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
