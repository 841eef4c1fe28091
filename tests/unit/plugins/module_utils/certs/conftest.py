"""Make the collection importable (build/ansible_collections) and this directory's pki helper."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[5]
for entry in (str(REPO / 'build'), str(Path(__file__).resolve().parent)):
    if entry not in sys.path:
        sys.path.insert(0, entry)
