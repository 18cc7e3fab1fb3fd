#!/usr/bin/env bash
# Install the servers the test suite starts by itself, when they are missing:
# Dovecot for the IMAP tests, Chromium for the browser tests (driven by
# Playwright from PyPI with executable_path; never `playwright install`).
#
# Dovecot (Debian dovecot-imapd): tests/dovecot.py runs a throwaway instance
# per test module on a free loopback port, so the package's own system-wide
# service must not be left running on port 143. Idempotent: with
# /usr/sbin/dovecot present it installs and stops nothing (a Dovecot that was
# already there may be someone's real mail server).
set -euo pipefail

DOVECOT=/usr/sbin/dovecot
CHROMIUM=/usr/bin/chromium
POLICY=/usr/sbin/policy-rc.d

missing=()
if [[ -x "$DOVECOT" ]]; then
  echo "dovecot: present ($("$DOVECOT" --version))"
else
  missing+=(dovecot-imapd)
fi
if [[ -x "$CHROMIUM" ]]; then
  echo "chromium: present"
else
  missing+=(chromium)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "${missing[*]}: missing, and installing needs root or sudo" >&2
  exit 1
fi

# Ask Debian's maintainer scripts not to start the service at all (exit 101 =
# "action forbidden", honoured by invoke-rc.d and deb-systemd-invoke) unless
# the machine already has a policy of its own.
own_policy=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [[ $own_policy -eq 1 ]]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
if [[ -x "$CHROMIUM" ]]; then echo "chromium: installed"; fi

# If the service started anyway (a policy that allowed it), stop and disable it.
if [[ -d /run/systemd/system ]]; then
  "${SUDO[@]}" systemctl disable --now dovecot.service >/dev/null 2>&1 || true
else
  "${SUDO[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
  if [[ -s /run/dovecot/master.pid ]] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
    "${SUDO[@]}" "$DOVECOT" stop || "${SUDO[@]}" kill "$(cat /run/dovecot/master.pid)"
  fi
fi
echo "dovecot: ready ($("$DOVECOT" --version)); system service not running"
