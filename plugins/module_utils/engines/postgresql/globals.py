# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a ``pg_dumpall --globals-only`` script so it can be put on a server that already has roles.

Replaying the script as it is fails at the first ``CREATE ROLE`` of a role that exists (the login role
at least) and, worse, its ``ALTER ROLE ... PASSWORD`` lines would reset the passwords of roles that are
in use there. So the script is split into statements (a small lexer that knows quoted identifiers,
standard and ``E''`` strings, dollar quoting and comments), each statement is attributed to the role or
tablespace it is about, and the restore keeps only what concerns objects missing on the target.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)'
DOLLAR = re.compile(r'\$([A-Za-z_][A-Za-z0-9_]*)?\$')


@dataclass
class Statement:
    sql: str                        # the statement without its terminating semicolon
    kind: str                       # create_role, role, membership, create_tablespace, tablespace, parameter, other
    subject: Optional[str] = None   # role / tablespace the statement is about (unquoted; parameter: the grantee,
    #                                 None for PUBLIC)
    member: Optional[str] = None    # membership: the role that is granted the subject; parameter: its name


def unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def split_statements(script: str) -> List[str]:
    """Top-level SQL statements of ``script`` (psql meta-commands and comments dropped)."""
    out: List[str] = []
    buf: List[str] = []
    i, n = 0, len(script)
    at_line_start = True
    while i < n:
        c = script[i]
        if at_line_start and c == '\\' and not ''.join(buf).strip():
            # psql meta-command (\connect, \restrict in newer pg_dumpall): to the end of the line.
            end = script.find('\n', i)
            i = n if end < 0 else end + 1
            continue
        at_line_start = c == '\n'
        if c == '-' and script.startswith('--', i):
            end = script.find('\n', i)
            i = n if end < 0 else end
            continue
        if c == '/' and script.startswith('/*', i):
            end = script.find('*/', i + 2)
            i = n if end < 0 else end + 2
            continue
        if c == "'":
            before = script[i - 2] if i >= 2 else ' '
            escape = i > 0 and script[i - 1] in 'eE' and not (before.isalnum() or before == '_')
            j = i + 1
            while j < n:
                if escape and script[j] == '\\':
                    j += 2
                    continue
                if script[j] == "'":
                    if j + 1 < n and script[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            buf.append(script[i:j + 1])
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n:
                if script[j] == '"':
                    if j + 1 < n and script[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            buf.append(script[i:j + 1])
            i = j + 1
            continue
        if c == '$':
            match = DOLLAR.match(script, i)
            if match:
                end = script.find(match.group(0), match.end())
                end = n if end < 0 else end + len(match.group(0))
                buf.append(script[i:end])
                i = end
                continue
        if c == ';':
            text = ''.join(buf).strip()
            if text:
                out.append(text)
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    text = ''.join(buf).strip()
    if text:
        out.append(text)
    return out


_PATTERNS: List[Tuple[str, 're.Pattern[str]']] = []


def patterns() -> List[Tuple[str, 're.Pattern[str]']]:
    """Compiled on first use: IGNORECASE over IDENT's ranges up to U+10FFFF makes ``re`` fold every code
    point, about 0.5 s of CPU that every PostgreSQL backup and restore paid at import (only @globals uses it)."""
    if not _PATTERNS:
        _PATTERNS.extend([
            ('create_role', re.compile(r'^CREATE\s+ROLE\s+(%s)\s*$' % IDENT, re.S | re.I)),
            ('role', re.compile(r'^ALTER\s+ROLE\s+(%s)\s' % IDENT, re.S | re.I)),
            ('role', re.compile(r'^COMMENT\s+ON\s+ROLE\s+(%s)\s' % IDENT, re.S | re.I)),
            ('role', re.compile(r'^SECURITY\s+LABEL\s+.*?\sON\s+ROLE\s+(%s)\s' % IDENT, re.S | re.I)),
            ('membership', re.compile(r'^GRANT\s+(%s)\s+TO\s+(%s)(?:\s|$)' % (IDENT, IDENT), re.S | re.I)),
            ('create_tablespace', re.compile(r'^CREATE\s+TABLESPACE\s+(%s)\s' % IDENT, re.S | re.I)),
            ('tablespace', re.compile(r'^(?:ALTER\s+TABLESPACE|COMMENT\s+ON\s+TABLESPACE)\s+(%s)\s' % IDENT,
                                      re.S | re.I)),
            ('tablespace', re.compile(r'^(?:GRANT|REVOKE)\s.*?\sON\s+TABLESPACE\s+(%s)\s' % IDENT, re.S | re.I)),
            # PostgreSQL 15+: GRANT SET, ALTER SYSTEM ON PARAMETER name TO role [WITH GRANT OPTION]
            ('parameter', re.compile(r'^(?:GRANT|REVOKE)\s.*?\sON\s+PARAMETER\s+(%s)\s+(?:TO|FROM)\s+(%s)(?:\s|$)'
                                     % (IDENT, IDENT), re.S | re.I)),
        ])
    return _PATTERNS


def classify(sql: str) -> Statement:
    for kind, pattern in patterns():
        match = pattern.match(sql)
        if match:
            if kind == 'membership':
                return Statement(sql, kind, unquote(match.group(1)), unquote(match.group(2)))
            if kind == 'parameter':
                grantee = match.group(2)
                return Statement(sql, kind, None if grantee.upper() == 'PUBLIC' else unquote(grantee),
                                 unquote(match.group(1)))
            return Statement(sql, kind, unquote(match.group(1)))
    return Statement(sql, 'other')


def parse(script: str) -> List[Statement]:
    return [classify(s) for s in split_statements(script)]


# GRANT <privileges> ON PARAMETER <name> TO <grantee> [WITH GRANT OPTION], as pg_dumpall writes it.
_PARAMETER_GRANT = re.compile(r'^GRANT\s+(.*?)\s+ON\s+PARAMETER\s', re.S | re.I)
PARAMETER_PRIVILEGES = ('SET', 'ALTER SYSTEM')


def parameter_privileges(statement: Statement) -> Optional[List[str]]:
    """The privileges a ``parameter`` GRANT gives, as ``has_parameter_privilege`` takes them (``SET WITH GRANT
    OPTION``...); None when it is not a GRANT of privileges this knows (a REVOKE, an unknown word)."""
    match = _PARAMETER_GRANT.match(statement.sql)
    if statement.kind != 'parameter' or not match:
        return None
    words = [w.strip().upper() for w in match.group(1).split(',')]
    if words in (['ALL'], ['ALL PRIVILEGES']):
        words = list(PARAMETER_PRIVILEGES)
    if not words or any(w not in PARAMETER_PRIVILEGES for w in words):
        return None
    option = ' WITH GRANT OPTION' if re.search(r'\sWITH\s+GRANT\s+OPTION\s*$', statement.sql, re.I) else ''
    return [w + option for w in words]
