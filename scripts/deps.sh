#!/usr/bin/env bash
# Installs what tokenledger needs to build and test on Debian 12 and keeps it at
# the newest version the apt sources have, so CI and every machine build and test
# with the same packages (the end-to-end test with the same chromium).
#
#   scripts/deps.sh              # the list below
#   scripts/deps.sh PACKAGE...   # only these (tests/e2e/run.sh does this)
#
# It refreshes the apt lists when they are missing or older than
# TL_APT_MAX_AGE_HOURS (6 by default: apt-get update on every build would cost
# seconds), installs the packages that are missing and upgrades those whose
# candidate version is newer than the installed one, saying which. Safe to
# re-run; says nothing when there is nothing to do. It needs root or sudo only
# when it has something to do.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  capnproto libcapnp-dev liblmdb-dev lmdb-utils libsodium-dev librdkafka-dev
  libh2o-evloop-dev libcurl4-openssl-dev nlohmann-json3-dev zlib1g-dev doctest-dev
  python3 curl
  # contract tests (scripts/python_tools.sh): a venv with PyPI's schemathesis; and
  # examples/python-consumer's test: a venv with confluent-kafka, pycapnp, PyNaCl
  python3-venv python3-pip
  # the metrics test: promtool check metrics (GET /metrics)
  prometheus
  # integration tests: a real Kafka broker (scripts/kafka.sh) and kcat as a foreign client
  kcat maven openjdk-17-jre-headless
  # the gateway recipe's test (docs/gateway.md) and bench/http_verify.sh: a real nginx
  nginx-light
  # end-to-end tests: the web page in a real browser
  chromium fonts-liberation2
  # fuzz tests (scripts/fuzz.sh): clang-16, libFuzzer and the sanitizer runtimes
  # (libclang-rt-16-dev is only recommended, and this installs no recommendations)
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
)
(($# == 0)) || PACKAGES=("$@")

MAX_AGE_HOURS=${TL_APT_MAX_AGE_HOURS:-6}
# When this script last refreshed the lists. The lists' own times cannot tell:
# apt leaves an unchanged file as it was, with the server's date.
STAMP=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tokenledger/apt-lists-refreshed

say() { echo "deps.sh: $*" >&2; }

SUDO=""
can_be_root() { # sets SUDO; false when neither root nor sudo
  [[ $(id -u) -eq 0 ]] && return 0
  command -v sudo >/dev/null || return 1
  SUDO="sudo"
}
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300) # wait for another apt or dpkg instead of failing

# ------------------------------------------------------------------ the apt lists

lists_fresh() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || return 1
  local refreshed
  refreshed=$(stat -c %Y "$STAMP" 2>/dev/null) || return 1
  (($(date +%s) - refreshed < MAX_AGE_HOURS * 3600))
}

if ! lists_fresh; then
  if can_be_root; then
    say "refreshing the apt lists (missing or older than $MAX_AGE_HOURS h)"
    if $SUDO apt-get "${APT_OPTS[@]}" update -qq >/dev/null; then
      mkdir -p "${STAMP%/*}" 2>/dev/null && touch "$STAMP" 2>/dev/null || true
    else
      say "apt-get update failed: going on with the apt lists as they are"
    fi
  else
    say "the apt lists are missing or older than $MAX_AGE_HOURS h, and there is no root or sudo to refresh them"
  fi
fi

# ------------------------------------------------------------------ installed vs candidate

declare -A installed=() candidate=()
while IFS=$'\t' read -r name status version; do
  [[ $status == "install ok installed" ]] && installed[$name]=$version
done < <(dpkg-query -W -f='${Package}\t${Status}\t${Version}\n' "${PACKAGES[@]}" 2>/dev/null || true)
while read -r name version; do
  candidate[$name]=$version
done < <(apt-cache policy "${PACKAGES[@]}" 2>/dev/null |
         awk '/^[^ ]/ { name = $0; sub(/:$/, "", name) } $1 == "Candidate:" { print name, $2 }')

missing=()
upgrade=()
upgrade_text="" # "chromium 1.0-1 → 1.1-1, curl …"
for p in "${PACKAGES[@]}"; do
  have=${installed[$p]:-}
  newest=${candidate[$p]:-(none)}
  if [[ -z $have ]]; then
    missing+=("$p")
  elif [[ $newest != "(none)" ]] && dpkg --compare-versions "$newest" gt "$have"; then
    upgrade+=("$p")
    upgrade_text+="${upgrade_text:+, }$p $have → $newest"
  fi
done
((${#missing[@]} + ${#upgrade[@]})) || exit 0

if ! can_be_root; then
  if ((${#missing[@]})); then
    say "need root or sudo to install ${missing[*]}"
    exit 1
  fi
  say "no root or sudo to upgrade $upgrade_text: going on with the installed versions"
  exit 0
fi
((${#missing[@]} == 0)) || say "installing ${missing[*]}"
((${#upgrade[@]} == 0)) || say "upgrading $upgrade_text"
# `install` of an installed package upgrades it to the candidate version.
$SUDO apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}" "${upgrade[@]}" >/dev/null
