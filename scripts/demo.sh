#!/usr/bin/env bash
# The main job on the embedded default (inventories/local): everything stays under build/demo and
# reports/, nothing from apt, no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
demo=build/demo
mkdir -p "$demo/etc/demo-app/ssl" reports
[ -f "$demo/etc/demo-app/app.conf" ] || printf 'listen = 127.0.0.1:8080\nworkers = 4\n' > "$demo/etc/demo-app/app.conf"
if [ ! -f "$demo/etc/demo-app/ssl/demo.key" ]; then
    (umask 077; head -c 64 /dev/urandom | base64 > "$demo/etc/demo-app/ssl/demo.key")
fi
ansible-playbook -i inventories/local playbooks/file_backup.yml
latest=$(ls -t "$demo"/backups/files/demo-config/*.manifest.json | head -1)
echo
echo "archive:  ${latest%.manifest.json}"
echo "manifest: $latest"
