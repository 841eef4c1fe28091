#!/usr/bin/env bash
# Runs the test layers (all by default, or those named): lint sanity units integration molecule.
# Every layer runs even when an earlier one failed; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
layers=("$@")
[ ${#layers[@]} -eq 0 ] && layers=(lint sanity units integration faults molecule)
PYTEST=(.venv/bin/pytest -p no:cacheprovider)

layer_lint() {
    ruff check plugins tests bench scripts && \
    # the blank-line rules ansible-test's pep8 enforces (preview-only in ruff): caught here in seconds
    ruff check --preview --select E30 plugins tests bench scripts && \
    mypy --config-file mypy.ini -p ansible_collections.opsready.operations.plugins.module_utils && \
    # ansible-lint installs the project as a collection under ~/.ansible/collections; a stale copy
    # from an earlier run hides roles and modules added since, so it starts from none.
    rm -rf "$HOME/.ansible/collections/ansible_collections/opsready" && \
    ansible-lint --offline -q roles playbooks
}
layer_sanity() { bash scripts/sanity.sh; }
layer_units() { "${PYTEST[@]}" tests/unit -q; }
layer_integration() {
    "${PYTEST[@]}" tests/integration -q -ra -n 2 --dist loadfile --durations=25
}
# The fast subset of the fault matrix (`make faults` runs all of it).
layer_faults() { "${PYTEST[@]}" tests/faults -m fast -q -ra; }
layer_molecule() { bash scripts/molecule.sh; }

failed=()
for layer in "${layers[@]}"; do
    echo "=== layer: $layer ==="
    start=$(date +%s)
    if "layer_$layer"; then
        echo "=== layer $layer passed in $(( $(date +%s) - start ))s ==="
    else
        echo "=== layer $layer FAILED in $(( $(date +%s) - start ))s ==="
        failed+=("$layer")
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED layers: ${failed[*]}"
    exit 1
fi
echo "all layers passed: ${layers[*]}"
