"""Unit tests import the collection as ansible_collections.opsready.operations (via build/)."""

import sys
from pathlib import Path

BUILD = Path(__file__).resolve().parents[2] / 'build'
if str(BUILD) not in sys.path:
    sys.path.insert(0, str(BUILD))
