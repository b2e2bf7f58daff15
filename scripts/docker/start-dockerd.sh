#!/usr/bin/env bash
# Make sure a Docker daemon answers on this machine, idempotently.
#
#   scripts/docker/start-dockerd.sh            # install docker.io if needed, start dockerd, wait
#
# - If `docker info` already works (any daemon, any DOCKER_HOST), it does nothing.
# - Otherwise, as root: installs Debian's docker.io (and containerd) when dockerd is missing,
#   then starts dockerd in the background (no systemd needed), logging to $ONYX_DOCKERD_LOG
#   (default /var/log/onyx-dockerd.log), and waits up to $ONYX_DOCKERD_WAIT seconds (default 60).
# - Exit status: 0 when the daemon answers; 2 when it cannot be installed or started (the
#   reason is the last line on stderr). Tests skip on 2 with that reason.
#
# Used by tests/docker (a session fixture) and CI. Safe to run from several shells at once:
# a lock (flock) serialises the install and the start.
set -uo pipefail

log_file="${ONYX_DOCKERD_LOG:-/var/log/onyx-dockerd.log}"
wait_s="${ONYX_DOCKERD_WAIT:-60}"
lock_file="${ONYX_DOCKERD_LOCK:-/tmp/onyx-start-dockerd.lock}"

say() { echo "start-dockerd: $*" >&2; }
fail() { say "$*"; exit 2; }

daemon_up() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && daemon_up; then
  exit 0
fi

# Serialise concurrent callers (several test sessions on one machine).
exec 9>"$lock_file" || fail "cannot open lock file $lock_file"
if command -v flock >/dev/null 2>&1; then
  flock -w 600 9 || fail "timed out waiting for another start-dockerd.sh (lock $lock_file)"
fi
if command -v docker >/dev/null 2>&1 && daemon_up; then
  exit 0
fi

if [ -n "${DOCKER_HOST:-}" ] && [[ "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
  fail "DOCKER_HOST=${DOCKER_HOST} does not answer; this script only starts the local daemon (unset DOCKER_HOST)"
fi

if [ "$(id -u)" -ne 0 ]; then
  fail "the Docker daemon is not running and starting it needs root (run: sudo $0)"
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v containerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "dockerd is not installed and apt-get is not available to install docker.io"
  say "installing docker.io from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed; trying the install with the current lists"
  # -o DPkg::Lock::Timeout waits for another apt instead of failing at once.
  if ! apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends \
        docker.io containerd runc iptables ca-certificates >/tmp/onyx-apt-docker.log 2>&1; then
    tail -n 5 /tmp/onyx-apt-docker.log >&2
    fail "apt-get install docker.io failed (log: /tmp/onyx-apt-docker.log)"
  fi
fi
command -v docker >/dev/null 2>&1 || fail "docker.io is installed but there is no docker CLI on PATH"

# A daemon may be starting already (another caller, or systemd): give it a moment before starting another.
if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
  for _ in $(seq 1 "$wait_s"); do daemon_up && exit 0; sleep 1; done
  fail "dockerd (pid $(pgrep -x dockerd | head -1)) runs but does not answer on /var/run/docker.sock after ${wait_s}s (log: $log_file)"
fi

say "starting dockerd (log: $log_file)"
# A stale pid file from a killed daemon stops a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
# setsid + nohup: the daemon outlives the test session that started it; 9>&- keeps it off our lock.
setsid nohup dockerd >>"$log_file" 2>&1 9>&- < /dev/null &
for _ in $(seq 1 "$wait_s"); do
  if daemon_up; then
    say "dockerd is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
tail -n 5 "$log_file" >&2 2>/dev/null
fail "dockerd did not answer within ${wait_s}s (log: $log_file)"
