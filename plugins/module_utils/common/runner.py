# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that runs external tools (pg_dump, mariadb-dump, ...).

Secrets reach tools through the environment or a temporary 0600 option file that is deleted
afterwards; never through argv. Every message that leaves here has the secrets redacted.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess  # nosec B404 # argv lists only, never a shell
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError, ToolError

REDACTED = '********'

# Engine errors are classified by matching the tools' English messages ("Connection refused", "password
# authentication failed"); a host with LANG=de_DE.UTF-8 or LANGUAGE=de would translate them. C.UTF-8, not
# C: the clients pick their character set from the locale (psql's client_encoding, mariadb's 'auto'), and
# names and data may be non-ASCII. LANGUAGE too: gettext honours it in every locale but plain C.
TOOL_LOCALE = {'LC_ALL': 'C.UTF-8', 'LANGUAGE': 'C'}


class ToolRunner:
    """Runs commands with secret hygiene. ``secrets`` are values never to show or pass in argv."""

    def __init__(self, secrets: Sequence[Optional[str]] = (), env: Optional[Dict[str, str]] = None) -> None:
        self.secrets: List[str] = [s for s in secrets if s]
        self.env: Dict[str, str] = dict(os.environ)
        self.env.update(TOOL_LOCALE)
        self.env.update(env or {})

    def add_secret(self, value: Optional[str]) -> None:
        if value and value not in self.secrets:
            self.secrets.append(value)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def _check_argv(self, argv: Sequence[str]) -> None:
        for arg in argv:
            for secret in self.secrets:
                if secret in arg:
                    # Refuse rather than leak: argv is world-readable in /proc/PID/cmdline.
                    raise OpsReadyError('Internal error: refusing to pass a secret on the command line of %s.'
                                        % os.path.basename(argv[0]))

    def which(self, tool: str, hint: str = '') -> str:
        path = shutil.which(tool, path=self.env.get('PATH'))
        if not path:
            raise OpsReadyError('%s was not found on PATH of the managed host. %s' % (tool, hint or 'Install it.'))
        return path

    def _env(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        env = dict(self.env)
        env.update(extra or {})
        return env

    def run(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None, data: Optional[bytes] = None,
            timeout: Optional[float] = None, check: bool = True, cwd: Optional[str] = None,
            what: Optional[str] = None) -> Tuple[int, str, str]:
        """Run to completion; returns (rc, stdout, stderr) as text with secrets redacted."""
        self._check_argv(argv)
        try:
            proc = subprocess.run(list(argv), input=data, capture_output=True, env=self._env(env),
                                  timeout=timeout, cwd=cwd, check=False)  # nosec B603 # argv list, no shell
        except FileNotFoundError:
            raise OpsReadyError('%s was not found on the managed host: install it or put it on PATH.' % argv[0])
        except subprocess.TimeoutExpired:
            raise ToolError('%s timed out after %ss.' % (what or os.path.basename(argv[0]), timeout),
                            cmd=[self.redact(a) for a in argv])
        out = self.redact(proc.stdout.decode('utf-8', 'replace'))
        err = self.redact(proc.stderr.decode('utf-8', 'replace'))
        if check and proc.returncode != 0:
            raise self.failure(argv, proc.returncode, err, what)
        return proc.returncode, out, err

    def popen(self, argv: Sequence[str], env: Optional[Dict[str, str]] = None, stdin: int | None = subprocess.DEVNULL,
              stdout: int | None = subprocess.PIPE, cwd: Optional[str] = None,
              pass_fds: Sequence[int] = ()) -> subprocess.Popen:
        """Start a streaming process (stderr to a temp file so a full pipe never blocks it). ``pass_fds``: descriptors
        the tool inherits (named to it as /dev/fd/N, so it never opens a path someone could swap)."""
        self._check_argv(argv)
        err = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(  # nosec B603 # argv list, no shell
                list(argv), stdin=stdin, stdout=stdout, stderr=err, env=self._env(env), cwd=cwd,
                pass_fds=tuple(pass_fds))
        except FileNotFoundError:
            err.close()
            raise OpsReadyError('%s was not found on the managed host: install it or put it on PATH.' % argv[0])
        proc.stderr_file = err  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen, argv: Sequence[str], what: Optional[str] = None,
               timeout: Optional[float] = None) -> str:
        """Wait for a popen()ed process; raise ToolError on a non-zero exit. Returns its stderr."""
        rc = proc.wait(timeout=timeout)
        err_file = proc.stderr_file  # type: ignore[attr-defined]
        err_file.seek(0)
        err = self.redact(err_file.read().decode('utf-8', 'replace'))
        err_file.close()
        if rc != 0:
            raise self.failure(argv, rc, err, what)
        return err

    def failure(self, argv: Sequence[str], rc: int, stderr: str, what: Optional[str] = None) -> ToolError:
        name = what or os.path.basename(argv[0])
        stderr = clip_lines(stderr)
        tail = stderr.strip().splitlines()[-5:]
        detail = (': ' + ' | '.join(tail)) if tail else ''
        if rc < 0:
            msg = '%s was killed by signal %d%s' % (name, -rc, detail)
        else:
            msg = '%s failed with exit code %d%s' % (name, rc, detail)
        return ToolError(msg, rc=rc, stderr=stderr, cmd=[self.redact(a) for a in argv])


# A tool's error output may echo a whole failed statement (the mariadb client does: an INSERT of a big row is
# megabytes of hex on one line), and it goes into the error message and the task result: each line is kept to this.
STDERR_LINE = 1000


def clip_lines(text: str, width: int = STDERR_LINE) -> str:
    """``text`` with every line longer than ``width`` cut in its middle (its length said there)."""
    if len(text) <= width:
        return text
    return '\n'.join(line if len(line) <= width else '%s ...[%d characters]... %s'
                     % (line[:width * 2 // 3], len(line), line[-(width // 4):]) for line in text.split('\n'))


@contextlib.contextmanager
def secret_file(content: str, prefix: str = 'opsready-', suffix: str = '.cnf',
                directory: Optional[str] = None) -> Iterator[str]:
    """A 0600 temporary file holding ``content`` (an option file, a pgpass), removed on exit."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
