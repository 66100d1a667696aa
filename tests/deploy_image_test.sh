#!/usr/bin/env bash
# deploy/Dockerfile's runtime stage installs the libraries the binaries it copies link: every
# shared library `ldd` finds for them belongs to a Debian package that the stage installs, that
# one of those depends on (recursively, as dpkg records it), or that debian:12-slim holds.
# No container runtime is needed: the binaries are this build's, the packages this machine's.
#
# Usage: deploy_image_test.sh DOCKERFILE BINARY...
set -euo pipefail

dockerfile=$1
shift

# The packages after "# runtime libraries" up to the first "&& rm": the stage's apt-get install.
listed=$(awk '/^# runtime libraries/ {on = 1} on && /apt-get install/ {grab = 1; next}
              grab && /&&/ {exit} grab {print}' "$dockerfile" | tr -d '\\' | xargs)
if [ -z "$listed" ]; then
  echo "FAIL: no runtime package list found in $dockerfile"
  exit 1
fi

# What a package brings, itself included, through the Depends dpkg records.
declare -A have=([libc6]=1 [libgcc-s1]=1 [libstdc++6]=1)  # debian:12-slim's own
queue=($listed)
while [ ${#queue[@]} -gt 0 ]; do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [ -n "${have[$p]:-}" ] && continue
  have[$p]=1
  if ! deps=$(dpkg-query -W -f='${Depends}' "$p" 2>/dev/null); then
    echo "FAIL: $p (listed in $dockerfile) is not a package installed here"
    exit 1
  fi
  for d in $(echo "$deps" | tr ',' '\n' | sed 's/([^)]*)//g; s/|.*//; s/:any//' | xargs -n1); do
    [ -z "${have[$d]:-}" ] && queue+=("$d")
  done
done

status=0
for binary in "$@"; do
  while read -r lib; do
    pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1) ||
      pkg=$(dpkg -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [ -z "$pkg" ]; then
      echo "FAIL: $(basename "$binary") links $lib, which no Debian package holds"
      status=1
    elif [ -z "${have[$pkg]:-}" ]; then
      echo "FAIL: $(basename "$binary") links $lib ($pkg), which the runtime stage does not install"
      status=1
    fi
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
done
[ "$status" -eq 0 ] && echo "ok: runtime stage installs $listed; every library of $* is there"
exit "$status"
