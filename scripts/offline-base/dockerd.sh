#!/usr/bin/env bash
# Docker's engine for `make test-containers` on a machine where nothing starts it (no init system):
#   dockerd.sh start            start dockerd as root in the background unless an engine answers
#   dockerd.sh stop-if-started  stop it again, only if `start` started it (and KEEP_DOCKERD != 1)
set -euo pipefail

DOCKER=${DOCKER:-docker}
STATE=${DIGITS_DOCKERD_STATE:-/tmp/digits-dockerd.pid}
LOG=${DIGITS_DOCKERD_LOG:-/tmp/digits-dockerd.log}
START_TIMEOUT=60

say() { echo "dockerd: $*" >&2; }
engine_answers() { "$DOCKER" info >/dev/null 2>&1; }

start() {
    if engine_answers; then
        say "Docker's engine is running"
        return
    fi
    [ "$(id -u)" = 0 ] || { say "Docker's engine is not running; start it (as root: dockerd &)"; exit 1; }
    command -v dockerd >/dev/null || { say "dockerd is missing: make docker-deps"; exit 1; }
    setsid dockerd > "$LOG" 2>&1 < /dev/null &
    echo $! > "$STATE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until engine_answers; do
        if ! kill -0 "$(cat "$STATE")" 2>/dev/null; then
            rm -f "$STATE"; tail -n 20 "$LOG" >&2; say "dockerd exited"; exit 1
        fi
        [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOG" >&2; say "no answer in ${START_TIMEOUT}s"; exit 1; }
        sleep 0.5
    done
    say "started dockerd as root in the background (pid $(cat "$STATE"), log $LOG)"
}

stop_if_started() {
    [ -f "$STATE" ] || return 0
    local pid
    pid=$(cat "$STATE")
    if [ "${KEEP_DOCKERD:-0}" = 1 ]; then
        say "leaving dockerd running (pid $pid; KEEP_DOCKERD=1)"
        return
    fi
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        local deadline=$((SECONDS + 60))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
        say "stopped the dockerd this run started (pid $pid)"
    fi
    rm -f "$STATE"
}

case ${1:-} in
    start) start ;;
    stop-if-started) stop_if_started ;;
    *) echo "usage: $0 start | stop-if-started" >&2; exit 2 ;;
esac
