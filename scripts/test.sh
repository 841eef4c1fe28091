#!/usr/bin/env bash
# Runs the test layers (all by default, or those named): lint package sanity units integration fidelity faults molecule.
# Every layer runs even when an earlier one failed; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
layers=("$@")
[ ${#layers[@]} -eq 0 ] && layers=(lint package sanity units integration fidelity faults molecule)
PYTEST=(.venv/bin/pytest -p no:cacheprovider)
# Each layer's per-test times (JUnit XML): where a slow `make test` spends its minutes, file by file.
RESULTS="$PWD/build/test-results"
mkdir -p "$RESULTS"

layer_lint() {
    ruff check plugins tests bench scripts && \
    # the blank-line rules ansible-test's pep8 enforces (preview-only in ruff): caught here in seconds
    ruff check --preview --select E30 plugins tests bench scripts && \
    mypy --config-file mypy.ini -p ansible_collections.opsready.operations.plugins.module_utils && \
    # ansible-lint installs the project as a collection under ~/.ansible/collections; a stale copy
    # from an earlier run hides roles and modules added since, so it starts from none.
    rm -rf "$HOME/.ansible/collections/ansible_collections/opsready" && \
    # the whole repository (changelogs, inventories, molecule scenarios too), production profile
    ansible-lint --offline --profile production -q && \
    # bandit over the Python the collection ships; every remaining finding is fixed or carries a
    # one-line `# nosec BXXX # reason`.
    bandit -q -r plugins
}
# The collection as Galaxy and Automation Hub see it: the built tarball through galaxy-importer (their
# upload check, which runs ansible-doc and ansible-lint on it; ansible-test off, no containers: sanity
# has its own layer). Any warning fails the layer: Galaxy shows them on the collection's page.
layer_package() {
    local out="$PWD/build/package" repo="$PWD"
    rm -rf "$out" && mkdir -p "$out" || return 1
    ansible-galaxy collection build --force --output-path "$out" . >/dev/null || return 1
    # the importer's ansible-lint installs the tarball under ~/.ansible/collections; replacing the copy the lint
    # layer left there while it already lints made files vanish under it once (load-failure warnings), so it
    # starts from none, as the lint layer does.
    rm -rf "$HOME/.ansible/collections/ansible_collections/opsready" || return 1
    # outside the repository and without its ansible.cfg, so nothing but the tarball is seen
    if ! (cd "$out" && env -u ANSIBLE_CONFIG GALAXY_IMPORTER_CONFIG="$repo/tests/packaging/galaxy-importer.cfg" \
            python -m galaxy_importer.main opsready-operations-*.tar.gz >importer.log 2>&1); then
        grep -v '^{' "$out/importer.log" | tail -40
        echo "galaxy-importer refused the tarball (full log: $out/importer.log)"
        return 1
    fi
    if grep -E '^(WARNING|ERROR)' "$out/importer.log"; then
        echo "galaxy-importer reported the lines above (full log: $out/importer.log)"
        return 1
    fi
    tail -1 "$out/importer.log"
}
layer_sanity() { bash scripts/sanity.sh; }
layer_units() { "${PYTEST[@]}" tests/unit -q --junitxml="$RESULTS/units.xml" -o junit_family=xunit1; }
layer_integration() {
    "${PYTEST[@]}" tests/integration -q -ra -n 2 --dist loadfile --durations=25 --junitxml="$RESULTS/integration.xml" -o junit_family=xunit1
}
# Restores compared object by object with their source (schema dump, per-table checksums, database-level
# properties), one file per engine; files share no server, so they run side by side.
layer_fidelity() { "${PYTEST[@]}" tests/fidelity -q -ra -n 2 --dist loadfile --durations=10 --junitxml="$RESULTS/fidelity.xml" -o junit_family=xunit1; }
# The fast subset of the fault matrix (`make faults` runs all of it).
layer_faults() { "${PYTEST[@]}" tests/faults -m fast -q -ra -n 2 --dist loadfile --durations=10 --junitxml="$RESULTS/faults.xml" -o junit_family=xunit1; }
layer_molecule() { bash scripts/molecule.sh; }

failed=()
run_layer() {
    local layer=$1 start
    echo "=== layer: $layer ==="
    start=$(date +%s)
    if "layer_$layer"; then
        echo "=== layer $layer passed in $(( $(date +%s) - start ))s ==="
    else
        echo "=== layer $layer FAILED in $(( $(date +%s) - start ))s ==="
        return 1
    fi
}

# Layers that leave the 2 CPUs partly idle run side by side, in groups; a group's chains run at once, the layers of one
# chain one after the other, each layer's output kept in its own log and printed whole, in the usual order, when the
# group is done. lint, package, sanity and units are single-threaded tools for most of their time (a CI run's vmstat
# showed the CPU 42 % idle through them); lint and package share a chain: both replace the collection under
# ~/.ansible/collections, and the fast fault matrix follows them in that chain (two workers, own servers and tmp trees:
# it fills the idle CPU instead of running alone after fidelity). fidelity left 20 % of the CPU idle and molecule's scenarios share nothing with it (their own
# /tmp/molecule-* trees and no database server; fidelity's servers are its own, on free ports).
groups=("lint package faults|sanity|units" "fidelity|molecule")

run_group() {
    local group=$1 chains=() chain pids=() layer
    IFS='|' read -r -a chains <<<"$group"
    for chain in "${chains[@]}"; do
        (
            for layer in $chain; do
                case " ${selected[*]} " in *" $layer "*) ;; *) continue ;; esac
                run_layer "$layer" >"$RESULTS/$layer.log" 2>&1
                echo $? >"$RESULTS/$layer.rc"
            done
        ) &
        pids+=($!)
    done
    wait "${pids[@]}"
    for layer in ${group//|/ }; do
        case " ${selected[*]} " in *" $layer "*) ;; *) continue ;; esac
        cat "$RESULTS/$layer.log"
        [ "$(cat "$RESULTS/$layer.rc" 2>/dev/null)" = 0 ] || failed+=("$layer")
    done
}

# The layers asked for, in the order given; a group runs side by side where its first selected layer comes, when
# two or more of its layers were asked for.
selected=("${layers[@]}")
done_layers=" "
for layer in "${layers[@]}"; do
    case "$done_layers" in *" $layer "*) continue ;; esac
    grouped=""
    for group in "${groups[@]}"; do
        case "|$group|" in *"|$layer|"* | *"|$layer "* | *" $layer|"* | *" $layer "*) grouped=$group ;; esac
    done
    if [ -n "$grouped" ]; then
        members=0
        for other in ${grouped//|/ }; do
            case " ${selected[*]} " in *" $other "*) members=$((members + 1)) ;; esac
        done
        if [ "$members" -gt 1 ]; then
            rm -f "$RESULTS"/*.rc
            run_group "$grouped"
            for other in ${grouped//|/ }; do done_layers+="$other "; done
            continue
        fi
    fi
    run_layer "$layer" || failed+=("$layer")
    done_layers+="$layer "
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED layers: ${failed[*]}"
    exit 1
fi
echo "all layers passed: ${layers[*]}"
