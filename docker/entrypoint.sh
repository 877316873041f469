#!/bin/sh
# The image's entrypoint (docker/Dockerfile): secrets into the environment, the config checked,
# then saltgw in this process's place (exec: `docker stop`'s SIGTERM reaches it, and it shuts
# down cleanly).
#
#   entrypoint.sh [run [OPTION...]]   saltgw run --http HOST:PORT [OPTION...] $SALTGW_CONFIG
#   entrypoint.sh COMMAND [ARG...]    saltgw COMMAND [ARG...]   (sim, validate, trace, health…)
#
# Environment (defaults in brackets):
#   SALTGW_CONFIG       the line's config [/etc/saltgw/line.yaml]
#   SALTGW_HTTP_HOST    where /healthz and /metrics listen [0.0.0.0: every interface of the
#                       container, so that a published port reaches it; saltgw itself means
#                       127.0.0.1 when no host is given]
#   SALTGW_HTTP_PORT    [9108]
#   SALTGW_HTTP_TOKEN   the bearer token /metrics and /healthz's reasons then need (advisable
#                       whenever the port is published beyond the host's loopback; best as the
#                       secret file saltgw_http_token, below). Without one, only callers on the
#                       container's loopback (the HEALTHCHECK) see /healthz's reasons.
#   SALTGW_LOG_LEVEL    debug, info, warning, error [info]
#   SALTGW_LOG_FORMAT   text or json [text]
#   SALTGW_SECRETS_DIR  [/run/secrets]: each file there named like a variable (any case, e.g.
#                       saltgw_mqtt_password) sets that variable, upper-cased, to its content
#                       unless the variable is set already. Secrets stay out of the image,
#                       the compose file and `docker inspect`.
set -eu

secrets_dir=${SALTGW_SECRETS_DIR:-/run/secrets}
if [ -d "$secrets_dir" ]; then
    for file in "$secrets_dir"/*; do
        [ -f "$file" ] || continue
        name=$(basename "$file" | tr '[:lower:]' '[:upper:]')
        case $name in
            '' | [0-9]* | *[!A-Z0-9_]*) continue ;;  # not a variable name
        esac
        if eval "[ -z \"\${$name+set}\" ]"; then
            export "$name=$(cat "$file")"
        fi
    done
fi

if [ $# -gt 0 ] && [ "$1" != run ]; then
    exec saltgw "$@"
fi
[ $# -eq 0 ] || shift

config=${SALTGW_CONFIG:-/etc/saltgw/line.yaml}
if [ ! -f "$config" ]; then
    echo "saltgw-entrypoint: no config at $config (mount one there, or set SALTGW_CONFIG)" >&2
    exit 2
fi
saltgw validate --quiet "$config" >&2 || exit 2
exec saltgw --log-level "${SALTGW_LOG_LEVEL:-info}" --log-format "${SALTGW_LOG_FORMAT:-text}" \
    run --http "${SALTGW_HTTP_HOST:-0.0.0.0}:${SALTGW_HTTP_PORT:-9108}" "$@" "$config"
