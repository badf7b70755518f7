#!/usr/bin/env bash
# Installs the Debian packages the test suite needs: PostgreSQL (a throwaway cluster,
# see scripts/pg.sh), Chromium (browser tests drive /usr/bin/chromium through the
# playwright package, because `playwright install` downloads are not allowed) and a
# font so screenshots have glyphs. Does nothing when everything is already present.
#
# Off Debian, or without root/sudo, it warns and carries on so `make test` still runs
# (the tests that need a missing server skip). With CI=true a failure is fatal, because
# a skipped PostgreSQL or browser test there would hide a regression.
set -euo pipefail

missing=()

# Any installed major version will do; scripts/pg.sh picks the newest.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
if [[ ! -x /usr/bin/chromium ]]; then
  missing+=(chromium)
fi
if [[ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
  missing+=(fonts-dejavu-core)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

fail() {
  echo "system-deps: $*" >&2
  if [[ "${CI:-}" == "true" ]]; then
    exit 1
  fi
  echo "system-deps: continuing; tests that need ${missing[*]} will be skipped." >&2
  exit 0
}

if ! command -v apt-get >/dev/null; then
  fail "missing ${missing[*]} and this is not a Debian/Ubuntu system; install them yourself."
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  fail "missing ${missing[*]}; need root (or sudo) to run apt-get install."
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists, so update before installing.
"${sudo[@]}" apt-get update -qq || fail "apt-get update failed."
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || fail "apt-get install ${missing[*]} failed."
