#!/usr/bin/env bash
# ansible-test sanity on the collection, locally (no Docker), with no ignore file.
# ansible-test needs the collection under .../ansible_collections/opsready/operations as a real
# directory (a symlink resolves away) that is its own git root (else it walks up to this repo, where
# build/ is ignored, and silently skips every target). It also bootstraps pip into each sanity venv
# from a get-pip script it downloads from outside PyPI: we seed its cache with an equivalent that
# installs the pip wheel from PyPI instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv
dest=$root/build/sanity/ansible_collections/opsready/operations
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard \
    | rsync -a --from0 --files-from=- --ignore-missing-args ./ "$dest/"
git -C "$dest" init -q
git -C "$dest" add -A

cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
[ -f "$cache/pip-24.2-py3-none-any.whl" ] || "$venv/bin/pip" download -q --no-deps pip==24.2 -d "$cache"
cat > "$cache/get_pip_24_2.py" <<'PY'
"""Stand-in for get-pip.py used by ansible-test: installs pip from the wheel next to this file."""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'pip-24.2-py3-none-any.whl'))
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.argv = ['pip', 'install', '--no-index', '--find-links', HERE, '--upgrade', '--force-reinstall'] + args
runpy.run_module('pip', run_name='__main__', alter_sys=True)
PY

log=$(mktemp)
cd "$dest"
# --python 3.11: the pyenv shims for other versions would make ansible-test try pythons that are absent.
set +e
PATH="$venv/bin:$PATH" ansible-test sanity --python 3.11 --color no "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -q 'All targets skipped' "$log" || ! grep -q 'Running sanity test' "$log"; then
    echo "sanity: no test ran (ansible-test found no targets); treating as failure"
    rc=1
fi
rm -f "$log"
exit "$rc"
