# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one guard for the optional ``cryptography`` package (as community.crypto's ``cryptography_support``).

``cryptography`` lives on the managed host and may be missing or old there. The files that use it import its
names in ``try: ... except ImportError: pass`` and never report the failure themselves: the module calls
``require(module, MINIMUM, what)`` first, which fails with Ansible's missing-library message (and the import
traceback) when the package is missing, or names the installed and the needed version when it is too old.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
import traceback
from typing import Any, Optional, Tuple

# certs/*: Certificate.not_valid_before_utc/not_valid_after_utc and asymmetric.types appeared in 42.0.
CERTS_MINIMUM = '42.0'
# common/encryption (age): X25519 raw private/public bytes appeared in 2.5; everything else is older.
ENCRYPTION_MINIMUM = '2.5'

try:
    import cryptography
    CRYPTOGRAPHY_VERSION: Optional[str] = str(cryptography.__version__)
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR: Optional[str] = None
except ImportError:  # exercised by test_crypto_guard (a Python that blocks the import) and the bare-venv test
    CRYPTOGRAPHY_VERSION = None
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()


def _release(version: str) -> Tuple[int, ...]:
    """The leading numeric release of a version string ('42.0.0rc1' -> (42, 0, 0)): enough to compare releases
    with a minimum, where LooseVersion would cost an import of Ansible's compat code (~15 ms) on every run."""
    match = re.match(r'\d+(?:\.\d+)*', version)
    return tuple(int(part) for part in match.group(0).split('.')) if match else ()


def missing(minimum: str, what: str = 'this module') -> Optional[str]:
    """None when cryptography >= ``minimum`` is importable; else the message that says what to install."""
    if not HAS_CRYPTOGRAPHY or CRYPTOGRAPHY_VERSION is None:
        # Imported here, only for the message: every encrypting backup calls this before its first byte, and
        # ansible.module_utils.basic costs ~40 ms (more under load) where no AnsibleModule loaded it already.
        from ansible.module_utils.basic import missing_required_lib
        return missing_required_lib('cryptography')
    if _release(CRYPTOGRAPHY_VERSION) < _release(minimum):
        return ('%s needs the Python package cryptography %s or newer on the managed host; it has %s. Upgrade it '
                "(pip install 'cryptography>=%s', or a newer python3-cryptography from the distribution)."
                % (what, minimum, CRYPTOGRAPHY_VERSION, minimum))
    return None


def require(module: Any, minimum: str, what: str = 'this module') -> None:
    """Fail the Ansible ``module`` (nothing done yet) unless cryptography >= ``minimum`` is importable."""
    message = missing(minimum, what)
    if message:
        module.fail_json(msg=message, exception=CRYPTOGRAPHY_IMPORT_ERROR)
