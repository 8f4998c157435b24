#!/bin/sh
# Entry point of the stand-in nginx image. When the command is nginx, first runs the start-up
# hooks in /docker-entrypoint.d/ in name order: `*.envsh` files are sourced (they may export
# variables), other executable `*.sh` files are run. Any other command runs as given.
# NGINX_ENTRYPOINT_QUIET_LOGS=1 silences the hooks' own messages.
set -eu

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*" >&2
}

case "${1:-}" in
    nginx | nginx-debug)
        for hook in /docker-entrypoint.d/*; do
            [ -f "$hook" ] || continue
            case "$hook" in
                *.envsh)
                    say "sourcing $hook"
                    # shellcheck disable=SC1090
                    . "$hook" ;;
                *.sh)
                    if [ -x "$hook" ]; then
                        say "running $hook"
                        "$hook"
                    else
                        say "ignoring $hook: not executable"
                    fi ;;
                *) say "ignoring $hook" ;;
            esac
        done
        say "start-up hooks done" ;;
esac

exec "$@"
