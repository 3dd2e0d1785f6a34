#!/usr/bin/env bash
# Checks the node's systemd unit with `systemd-analyze security --offline=yes`: the overall
# exposure must be at most 2.5 ("OK"), and UMask must be 0077. Run by .ci/run. Without
# systemd-analyze (Debian package `systemd`) it says so and exits 0: the check needs the tool,
# not a running systemd.
set -euo pipefail
unit="$(dirname "$0")/lienthong-node.service"
max="${LIENTHONG_MAX_EXPOSURE:-2.5}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-hardening: systemd-analyze not found (apt-get install systemd); not checked"
    exit 0
fi
if ! grep -qx 'UMask=0077' "$unit"; then
    echo "check-hardening: $unit must set UMask=0077" >&2
    exit 1
fi
report="$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1)" || {
    echo "$report" >&2
    echo "check-hardening: systemd-analyze could not analyse $unit" >&2
    exit 1
}
line="$(grep 'Overall exposure level' <<<"$report" || true)"
exposure="$(sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/' <<<"$line")"
if [[ -z "$line" || ! "$exposure" =~ ^[0-9]+\.[0-9]+$ ]]; then
    echo "$report" >&2
    echo "check-hardening: no exposure level in the report" >&2
    exit 1
fi
if awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e > m) }'; then
    grep '✗' <<<"$report" >&2 || true
    echo "check-hardening: exposure $exposure is above $max" >&2
    exit 1
fi
echo "check-hardening: $(basename "$unit") exposure $exposure (at most $max), UMask=0077"
