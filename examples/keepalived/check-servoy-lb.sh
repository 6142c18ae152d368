#!/bin/sh
# keepalived health check for servoy-lb: exit 0 while this balancer can route (its admin
# API answers GET /healthz with 200), non-zero when every backend is down or disabled
# (503), or when the balancer does not answer within the timeout.
#
# Run it from an address admin.allow lists (keepalived runs it on the balancer's own host,
# so 127.0.0.1 when admin.host is loopback). /healthz needs no token.
#
# Settings (environment, e.g. in the vrrp_script line):
#   SERVOY_LB_ADMIN  admin API URL        (default http://127.0.0.1:8081)
#   SERVOY_LB_CA     CA / self-signed certificate file, for an https admin API (admin.tls)
#   CHECK_TIMEOUT    seconds for the whole check (default 2; keep it below the vrrp_script timeout)
set -u
url="${SERVOY_LB_ADMIN:-http://127.0.0.1:8081}"
timeout="${CHECK_TIMEOUT:-2}"
if [ -n "${SERVOY_LB_CA:-}" ]; then
  exec curl -fsS --max-time "$timeout" --cacert "$SERVOY_LB_CA" -o /dev/null "$url/healthz"
fi
exec curl -fsS --max-time "$timeout" -o /dev/null "$url/healthz"
