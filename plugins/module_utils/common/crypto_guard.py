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

import traceback
from typing import Any, Optional

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


def missing(minimum: str, what: str = 'this module') -> Optional[str]:
    """None when cryptography >= ``minimum`` is importable; else the message that says what to install."""
    # Imported here, not at the top: every backup and restore imports this file (through the encryption code)
    # and ansible.module_utils.basic costs ~0.1 s of start-up where no AnsibleModule loaded it already.
    from ansible.module_utils.basic import missing_required_lib
    from ansible.module_utils.compat.version import LooseVersion
    if not HAS_CRYPTOGRAPHY or CRYPTOGRAPHY_VERSION is None:
        return missing_required_lib('cryptography')
    if LooseVersion(CRYPTOGRAPHY_VERSION) < LooseVersion(minimum):
        return ('%s needs the Python package cryptography %s or newer on the managed host; it has %s. Upgrade it '
                "(pip install 'cryptography>=%s', or a newer python3-cryptography from the distribution)."
                % (what, minimum, CRYPTOGRAPHY_VERSION, minimum))
    return None


def require(module: Any, minimum: str, what: str = 'this module') -> None:
    """Fail the Ansible ``module`` (nothing done yet) unless cryptography >= ``minimum`` is importable."""
    message = missing(minimum, what)
    if message:
        module.fail_json(msg=message, exception=CRYPTOGRAPHY_IMPORT_ERROR)
