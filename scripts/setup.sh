#!/usr/bin/env bash
# Idempotent set-up: Debian packages (with --test), the .venv from pinned requirements, and the
# collection link that makes `opsready.operations` resolvable from the repository root.
# Quick when already done: every step checks a stamp or the installed state first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

log() { printf '[setup] %s\n' "$*"; }

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})"
        exit 1
    fi
    if [ $apt_updated -eq 0 ]; then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        apt_updated=1
    fi
    log "apt-get install ${missing[*]}"
    # Packages installed for a tool only (prometheus: promtool) must not start their daemon. Debian's
    # maintainer scripts ask /usr/sbin/policy-rc.d; one that denies those services is put in place for
    # the install when the machine has none (containers usually have one denying everything).
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        # shellcheck disable=SC2016  # $1 is for the policy script, not for here
        printf '#!/bin/sh\n# opsready setup.sh: tool-only packages never start their service\ncase "$1" in %s) exit 101;; esac\nexit 0\n' \
            "$(IFS='|'; echo "${no_start_services[*]}")" > "$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ $own_policy -eq 1 ] && rm -f "$policy"
    # systemd still enables the unit for the next boot: disable it (and stop it, should it run).
    if [ -d /run/systemd/system ]; then
        for svc in "${no_start_services[@]}"; do
            systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
        done
    fi
    return $rc
}
# Services of packages installed only for their command-line tools, or for servers the tests start themselves.
no_start_services=(prometheus nginx named bind9 haproxy pgbouncer redis-server)

# Packages from bindep.txt: the [test] profile only with --test.
bindep_packages() {
    local profile=$1
    # name [tags]: keep Debian lines (platform:dpkg or no platform tag); [test] only for --test.
    sed -e 's/#.*//' bindep.txt | awk -v prof="$profile" 'NF {
        name=$1; tags=$0; sub(/^[^[]*/, "", tags)
        if (tags ~ /platform:/ && tags !~ /platform:dpkg/) next
        if (tags ~ /test/ && prof != "test") next
        print name }'
}

pick_python() {
    for candidate in /usr/bin/python3.11 /root/.pyenv/versions/3.11.*/bin/python3 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

profile=base
if [ "$want_test" -eq 1 ]; then profile="test"; fi
# shellcheck disable=SC2046
apt_install $(bindep_packages "$profile")

# A real locale besides C/POSIX for the tests (PostgreSQL's lc_monetary/lc_numeric/lc_time take only locales the
# system has): de_DE.UTF-8, generated from the locales package's sources when missing (root only).
test_locale=de_DE.UTF-8
if [ $want_test -eq 1 ] && ! locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\?8'; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing locale $test_locale (run as root or: sudo localedef -i de_DE -f UTF-8 $test_locale)"
        exit 1
    fi
    log "localedef $test_locale"
    localedef -i de_DE -f UTF-8 "$test_locale"
fi

py=$(pick_python || true)
if [ -z "$py" ]; then
    apt_install python3 python3-venv
    py=$(pick_python)
fi

reqs=requirements.txt
[ $want_test -eq 1 ] && reqs=requirements-dev.txt
stamp=.venv/.stamp-$(basename "$reqs" .txt)
digest=$(cat requirements.txt "$reqs" | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    log "creating .venv with $py"
    rm -rf .venv
    "$py" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    log "installing $reqs into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$reqs"
    echo "$digest" > "$stamp"
fi

# Azurite (Azure Storage emulator, npm) for the backend=azure tests, pinned, under build/ (not in the repository).
azurite_version=3.37.0
if [ $want_test -eq 1 ] && [ "$(cat build/azurite/.version 2>/dev/null)" != "$azurite_version" ]; then
    log "installing azurite@$azurite_version with npm into build/azurite"
    mkdir -p build/azurite
    npm install --prefix build/azurite --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null
    echo "$azurite_version" > build/azurite/.version
fi

# The collection, resolvable as opsready.operations (ansible.cfg: collections_path = ./build).
mkdir -p build/ansible_collections/opsready
link=build/ansible_collections/opsready/operations
if [ "$(readlink "$link" 2>/dev/null)" != "$root" ]; then
    rm -rf "$link"
    ln -s "$root" "$link"
fi
log "ready ($profile)"
