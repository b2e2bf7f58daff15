#!/usr/bin/env bash
# The offline CPU root image: a minimal Debian (bookworm) root file system with python3, python3-venv,
# ffmpeg and ca-certificates, made with debootstrap and loaded with `docker import`.
# For machines that reach no image registry (only the Debian mirror and PyPI). The tool images are
# then built on top of it with --build-arg BASE_IMAGE=... (see onyx install --help).
#
#   scripts/docker/bootstrap-base.sh [--force] [--image NAME:TAG] [--tarball PATH]
#
# Environment (all optional):
#   ONYX_ROOTFS_IMAGE   image to create            (default onyx-rootfs:bookworm)
#   ONYX_DOCKER_CACHE   where the tarball is kept  (default ${XDG_CACHE_HOME:-$HOME/.cache}/onyx-docker)
#   ONYX_DEBIAN_MIRROR  Debian mirror              (default http://deb.debian.org/debian)
#   ONYX_DEBIAN_SUITE   Debian release             (default bookworm)
#
# Cached: nothing is done when the image exists; the tarball is re-imported when only it exists.
# --force rebuilds both. Needs root (debootstrap, chroot) and a running dockerd.
set -euo pipefail

image="${ONYX_ROOTFS_IMAGE:-onyx-rootfs:bookworm}"
cache="${ONYX_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/onyx-docker}"
mirror="${ONYX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${ONYX_DEBIAN_SUITE:-bookworm}"
force=0
tarball=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --image) image="$2"; shift ;;
    --tarball) tarball="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bootstrap-base: unknown argument $1" >&2; exit 64 ;;
  esac
  shift
done
tarball="${tarball:-$cache/rootfs-$suite-minbase-python3-ffmpeg.tar}"
packages="python3,python3-venv,python-is-python3,ffmpeg,ca-certificates,tini"

say() { echo "bootstrap-base: $*" >&2; }

command -v docker >/dev/null 2>&1 || { say "no docker CLI: install docker.io (scripts/docker/start-dockerd.sh)"; exit 2; }
docker info >/dev/null 2>&1 || { say "the Docker daemon does not answer: start it (scripts/docker/start-dockerd.sh)"; exit 2; }

if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  say "$image is present (use --force to rebuild)"
  exit 0
fi

started=$(date +%s)
if [ "$force" -eq 1 ] || [ ! -s "$tarball" ]; then
  [ "$(id -u)" -eq 0 ] || { say "debootstrap needs root"; exit 2; }
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  fi
  mkdir -p "$cache"
  root="$(mktemp -d "$cache/rootfs.XXXXXX")"
  cleanup() { mountpoint -q "$root/proc" && umount "$root/proc"; rm -rf "$root"; }
  trap cleanup EXIT
  say "debootstrap $suite (minbase + $packages) from $mirror into $root"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
    > "$cache/debootstrap.log" 2>&1 || { tail -n 20 "$cache/debootstrap.log" >&2; say "debootstrap failed (log: $cache/debootstrap.log)"; exit 1; }
  # Trim what a runtime image never needs.
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/usr/share/locale/* "$root"/tmp/* "$root"/var/tmp/*
  # apt inside derived images works against the same suite.
  echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
  say "packing $tarball"
  tar -C "$root" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  cleanup
  trap - EXIT
else
  say "reusing $tarball"
fi

say "docker import -> $image"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap $suite minbase + $packages" \
  "$tarball" "$image" >/dev/null
say "$image ready in $(( $(date +%s) - started )) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
