#!/usr/bin/env bash
# Runs every role's molecule scenario (delegated driver on localhost: syntax, converge,
# idempotence, testinfra verify, cleanup). Molecule needs the venv on PATH (ansible-config).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
logdir=$(mktemp -d)
failed=()
for scenario in roles/*/molecule/default; do
    role_dir=${scenario%/molecule/default}
    role=$(basename "$role_dir")
    # A fresh ephemeral directory per run: molecule keys its default one on the role folder's name
    # only, so a state file left by an earlier failed run (prepared: true) would skip prepare.yml.
    if (cd "$role_dir" && MOLECULE_EPHEMERAL_DIRECTORY="$logdir/state-$role" molecule test) >"$logdir/$role.log" 2>&1; then
        echo "molecule $role: passed"
    else
        echo "molecule $role: FAILED (last lines follow)"
        tail -60 "$logdir/$role.log"
        failed+=("$role")
    fi
done
rm -rf "$logdir"
[ ${#failed[@]} -eq 0 ] || { echo "molecule failed for: ${failed[*]}"; exit 1; }
