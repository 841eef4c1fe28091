#!/usr/bin/env bash
# The main job on the embedded default (inventories/local): a DR drill of a SQLite shop database.
# Creates the demo database with realistic data if missing (and adds a few new orders each run, like a
# live application would), backs it up, drills it (restore to a scratch copy, integrity check, smoke
# queries, RTO/RPO against the objectives), writes the report and prints the verdict and report paths.
# Everything stays under build/demo and reports/; nothing from apt, no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export ANSIBLE_PIPELINING=True
demo=build/demo
db="$demo/app/shop.sqlite"
mkdir -p "$demo/app" reports
started=$(date +%s)

.venv/bin/python - "$db" <<'PY'
"""Create (once) a shop database with realistic data; then add a few orders, as a live app would."""
import datetime
import os
import random
import sqlite3
import sys

path = sys.argv[1]
fresh = not os.path.exists(path)
conn = sqlite3.connect(path)
conn.execute('PRAGMA journal_mode=WAL')
conn.execute('PRAGMA foreign_keys=ON')
rng = random.Random(20261129 if fresh else None)
now = datetime.datetime.now(datetime.timezone.utc)
if fresh:
    conn.executescript('''
    CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                            country TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                           unit_price NUMERIC NOT NULL CHECK (unit_price > 0));
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                         status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'shipped', 'refunded')),
                         ordered_at TEXT NOT NULL);
    CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
                              product_id INTEGER NOT NULL REFERENCES products(id),
                              quantity INTEGER NOT NULL CHECK (quantity > 0), unit_price NUMERIC NOT NULL);
    CREATE INDEX orders_customer ON orders(customer_id);
    CREATE INDEX orders_status_time ON orders(status, ordered_at);
    CREATE INDEX items_order ON order_items(order_id);
    ''')
    first = ['Ada', 'Grace', 'Linus', 'Ken', 'Barbara', 'Edsger', 'Margaret', 'Dennis', 'Frances', 'Donald']
    last = ['Lovelace', 'Hopper', 'Torvalds', 'Thompson', 'Liskov', 'Dijkstra', 'Hamilton', 'Ritchie', 'Allen']
    countries = ['DE', 'FR', 'GB', 'US', 'NL', 'SE', 'ES', 'IT', 'PL', 'JP']
    customers = []
    for i in range(1, 5001):
        name = '%s %s' % (rng.choice(first), rng.choice(last))
        created = now - datetime.timedelta(days=rng.randint(30, 1500), seconds=rng.randint(0, 86400))
        customers.append((i, 'customer%05d@example.com' % i, name, rng.choice(countries), created.isoformat()))
    conn.executemany('INSERT INTO customers VALUES (?, ?, ?, ?, ?)', customers)
    nouns = ['cable', 'adapter', 'keyboard', 'monitor', 'headset', 'dock', 'charger', 'mouse', 'webcam', 'stand']
    products = [(i, 'SKU-%04d' % i, '%s %s' % (rng.choice(['USB-C', 'HDMI', 'Wireless', 'Pro', 'Mini']),
                                               rng.choice(nouns)), round(rng.uniform(4, 400), 2))
                for i in range(1, 301)]
    conn.executemany('INSERT INTO products VALUES (?, ?, ?, ?)', products)
    count = 20000
else:
    count = rng.randint(5, 25)
prices = dict(conn.execute('SELECT id, unit_price FROM products'))
customers_n = conn.execute('SELECT count(*) FROM customers').fetchone()[0]
with conn:
    for _ in range(count):
        ordered = now - datetime.timedelta(seconds=rng.randint(0, 400 * 86400)) if fresh else now
        status = rng.choices(['paid', 'shipped', 'open', 'refunded'], [50, 35, 10, 5])[0]
        cur = conn.execute('INSERT INTO orders (customer_id, status, ordered_at) VALUES (?, ?, ?)',
                           (rng.randint(1, customers_n), status, ordered.isoformat()))
        for _ in range(rng.randint(1, 4)):
            product = rng.randint(1, len(prices))
            conn.execute('INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (?, ?, ?, ?)',
                         (cur.lastrowid, product, rng.randint(1, 5), prices[product]))
orders = conn.execute('SELECT count(*) FROM orders').fetchone()[0]
conn.close()
print('demo database %s: %s, %d orders' % (path, 'created' if fresh else '%d new orders' % count, orders))
PY

echo "backing up and drilling $db ..."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ANSIBLE_STDOUT_CALLBACK=default ansible-playbook -i inventories/local playbooks/dr_drill.yml -e dr_drill_backup_first=true >"$log" 2>&1
rc=$?
set -e
latest=$(find reports -maxdepth 1 -name 'drill-*.json' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
if [ -z "$latest" ]; then
    cat "$log"
    echo "no drill report was written" >&2
    exit 1
fi
[ $rc -eq 0 ] || grep -E 'FAILED|fatal|ERROR' "$log" | tail -20
.venv/bin/python - "$latest" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print()
print(report['verdict_line'])
for reason in report['reasons']:
    print('  - ' + reason)
PY
base=${latest%.json}
echo "report:   $PWD/$base.html"
echo "markdown: $PWD/$base.md"
echo "json:     $PWD/$latest"
echo "history:  $PWD/reports/drills.jsonl ($(wc -l < reports/drills.jsonl) drills)"
echo "took $(( $(date +%s) - started )) s"
exit $rc
