"""An age key pair for encrypted-backup tests: the identity (secret), its recipient, and a key file (0600) as
``age-keygen`` writes one, for ``identity_file`` options and Debian's ``age -d -i``.

Import it after ``build/`` is on ``sys.path`` (the collection's encryption module makes the key).
"""

from __future__ import annotations

from pathlib import Path

from ansible_collections.opsready.operations.plugins.module_utils.common import encryption


class Key:
    def __init__(self, directory: Path, name: str) -> None:
        self.secret = encryption.generate_identity()
        self.recipient = encryption.parse_identities(self.secret)[0].recipient
        self.file = directory / ('%s.txt' % name)
        self.file.write_text('# public key: %s\n%s\n' % (self.recipient, self.secret))
        self.file.chmod(0o600)
