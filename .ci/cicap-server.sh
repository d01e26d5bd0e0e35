#!/usr/bin/env bash
# Runs a real c-icap (Debian's c-icap + libc-icap-mod-virus-scan + libclamav) in the foreground on
# 127.0.0.1:PORT, with two services:
#   icap://127.0.0.1:PORT/echo        srv_echo (returns the message unmodified)
#   icap://127.0.0.1:PORT/virus_scan  virus_scan with the clamav engine (alias: /avscan)
#
# ClamAV signatures cannot be downloaded (no network), so a one-signature database is generated at
# start: a body signature (.ndb, any file type, any offset) over the 68-byte EICAR string, so EICAR is
# also found inside a bigger file. c-icap reports it as
#   X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature.UNOFFICIAL;
# (libclamav appends ".UNOFFICIAL" to custom signature names).
#
# Debian's clamav module always loads signatures from /var/lib/clamav, whatever the config says, so
# c-icap runs in a private mount namespace (unshare -m) where a temp dir is bind-mounted over
# /var/lib/clamav: nothing outside changes. Without unshare permission it falls back to writing its
# database file into /var/lib/clamav, only when no other database is there, and removes it on exit.
#
# Usage: [CICAP_THREADS=N] cicap-server.sh PORT   (as root). Prints "ready" on stdout once the port accepts
# connections, then runs until killed; c-icap's own output goes to stderr. Its logs stay in the temp
# dir, printed to stderr when it fails to start. CICAP_KEEP=1 keeps the temp dir.
set -euo pipefail

port=${1:?usage: cicap-server.sh PORT}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/cicap-server.XXXXXX)
chmod 755 "$work"
pid=
fallback_db=

cleanup() {
  trap '' INT TERM # finish cleaning up even when signalled again
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    local kids
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" $kids 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [ -n "$fallback_db" ] && rm -f "$fallback_db"
  [ "${CICAP_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "cicap-server: 127.0.0.1:$port is already in use" >&2
  exit 1
fi

mkdir -p "$work/db" "$work/tmp" "$work/clamtmp" "$work/run"
chmod 1777 "$work/tmp" "$work/clamtmp"

# The EICAR test string, kept base64-encoded so this file itself is not flagged.
base64 -d >"$work/eicar.com" <<<'WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo='
# ndb: Name:TargetType:Offset:HexSignature (target 0 = any file, offset * = anywhere).
printf 'Eicar-Test-Signature:0:*:%s\n' "$(od -An -v -tx1 "$work/eicar.com" | tr -d ' \n')" \
  >"$work/db/eicar.ndb"
chmod 644 "$work/db/eicar.ndb"

# CICAP_THREADS sets ThreadsPerChild (default 10): c-icap serves that many connections at once
# and leaves the others queued, unanswered, until one closes.
sed -e "s|@PORT@|$port|g" -e "s|@WORK@|$work|g" \
  -e "s|^ThreadsPerChild .*|ThreadsPerChild ${CICAP_THREADS:-10}|" \
  "$here/peers/c-icap.conf.in" >"$work/c-icap.conf"

run=(c-icap -N -D -f "$work/c-icap.conf")
if unshare -m --propagation private true 2>/dev/null; then
  unshare -m --propagation private \
    bash -c 'mount --bind "$1" /var/lib/clamav && shift && exec "$@"' _ "$work/db" "${run[@]}" >&2 &
  pid=$!
else
  fallback_name=icap-interop-eicar.ndb
  others=()
  shopt -s nullglob
  for f in /var/lib/clamav/*.c?d /var/lib/clamav/*.[hn]db /var/lib/clamav/*.hsb; do
    # A database left by a run of this script that was killed hard does not count.
    [ "$(basename "$f")" = "$fallback_name" ] || others+=("$f")
  done
  shopt -u nullglob
  if [ ${#others[@]} -gt 0 ]; then
    echo "cicap-server: cannot unshare a mount namespace and /var/lib/clamav already holds" \
      "databases (${others[*]}); refusing to touch them" >&2
    exit 1
  fi
  mkdir -p /var/lib/clamav
  fallback_db=/var/lib/clamav/$fallback_name
  cp "$work/db/eicar.ndb" "$fallback_db"
  "${run[@]}" >&2 &
  pid=$!
fi

for _ in $(seq 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "cicap-server: c-icap exited before listening; its log:" >&2
    cat "$work/server.log" >&2 2>/dev/null || true
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo ready
    wait "$pid"
    exit $?
  fi
  sleep 0.1
done
echo "cicap-server: port $port not listening after 30 s; c-icap log:" >&2
cat "$work/server.log" >&2 2>/dev/null || true
exit 1
