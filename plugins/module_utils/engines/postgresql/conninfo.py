# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq connection strings read as libpq reads them (``conninfo_parse`` and ``conninfo_uri_parse`` of
fe-connect.c): the one parser of the collection (subscriptions, primary_conninfo, dblink strings).

* ``key=value``: blanks around ``=`` are skipped (also right after it: ``host= port=5`` sets host to ``port=5``);
  a value is bare (up to the next blank; ``\\`` escapes the next character, a trailing one is dropped) or
  single-quoted (``\\`` escapes inside; ``''`` is the empty value). A keyword without ``=`` or an unterminated
  quote is an error. The last of a repeated keyword wins.
* URI: ``postgresql://`` or ``postgres://`` (case-sensitive, as libpq's strncmp), then
  ``[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]``; hosts may be ``[IPv6]``, several
  hosts give ``host`` and ``port`` as comma-separated lists (an empty port where a host has none); every part is
  percent-decoded (``+`` stays ``+``; ``%00`` and a bad escape are errors); an empty dbname is not set;
  ``ssl=true`` means ``sslmode=require``.

Errors never quote the string (it may hold a password). ``strict=False`` returns what was read before an error,
for callers that only show or keep a few harmless keys.

Private to opsready.operations; do not import from other collections.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError

URI_PREFIXES = ('postgresql://', 'postgres://')
_BLANK = ' \t\n\r\f\v'


class ConninfoError(OpsReadyError):
    """A connection string libpq would refuse (the message names where, never the string itself)."""


def parse(text: str, strict: bool = True) -> Dict[str, str]:
    """The keywords of libpq connection string ``text`` (``key=value ...`` or a URI) as a dict."""
    found: Dict[str, str] = {}
    try:
        if text.startswith(URI_PREFIXES):
            _parse_uri(text, found)
        else:
            _parse_key_value(text, found)
    except ConninfoError:
        if strict:
            raise
    return found


# -- key=value ---------------------------------------------------------------------------------------------------
def _parse_key_value(text: str, found: Dict[str, str]) -> None:
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n:
            return
        start = i
        while i < n and text[i] != '=' and text[i] not in _BLANK:
            i += 1
        key = text[start:i]
        while i < n and text[i] in _BLANK:
            i += 1
        if not key:
            raise ConninfoError('Connection string: missing keyword before "=" at position %d.' % start)
        if i >= n or text[i] != '=':
            raise ConninfoError('Connection string: missing "=" after "%s" at position %d.'
                                % (_shown(key), i))
        i += 1
        while i < n and text[i] in _BLANK:
            i += 1
        value, i = _value(text, i)
        found[key] = value


def _value(text: str, i: int) -> Tuple[str, int]:
    """A value starting at ``i`` and the position after it."""
    n = len(text)
    chars: List[str] = []
    if i < n and text[i] == "'":
        i += 1
        while True:
            if i >= n:
                raise ConninfoError('Connection string: unterminated quoted string.')
            if text[i] == '\\':
                i += 1
                if i < n:
                    chars.append(text[i])
                    i += 1
                continue
            if text[i] == "'":
                return ''.join(chars), i + 1
            chars.append(text[i])
            i += 1
    while i < n and text[i] not in _BLANK:
        if text[i] == '\\':
            i += 1
            if i < n:
                chars.append(text[i])
                i += 1
        else:
            chars.append(text[i])
            i += 1
    return ''.join(chars), i


def _shown(key: str) -> str:
    """A keyword as an error shows it: a bare word, cut short (a misplaced password would be a 'keyword')."""
    return key if key.isidentifier() and len(key) <= 32 else '(unreadable keyword)'


# -- URI ---------------------------------------------------------------------------------------------------------
def _parse_uri(text: str, found: Dict[str, str]) -> None:
    prefix = next(p for p in URI_PREFIXES if text.startswith(p))
    rest = text[len(prefix):]
    # user[:password]@ : libpq looks for '@' before the first '/' (not '?')
    at, slash = rest.find('@'), rest.find('/')
    if at >= 0 and (slash < 0 or at < slash):
        userspec, rest = rest[:at], rest[at + 1:]
        user, colon, password = userspec.partition(':')
        _store(found, 'user', user)
        if colon:
            _store(found, 'password', password)
    hosts: List[str] = []
    ports: List[str] = []
    p, n = 0, len(rest)
    end: Optional[str] = None
    while True:
        if p < n and rest[p] == '[':
            close = rest.find(']', p + 1)
            if close < 0:
                raise ConninfoError('Connection URI: end of string reached when looking for the matching "]" of '
                                    'an IPv6 host address.')
            if close == p + 1:
                raise ConninfoError('Connection URI: an IPv6 host address may not be empty.')
            host = rest[p + 1:close]
            p = close + 1
            if p < n and rest[p] not in ':/?,':
                raise ConninfoError('Connection URI: unexpected character "%s" at position %d (expected ":" or "/").'
                                    % (rest[p], len(prefix) + p))
        else:
            start = p
            while p < n and rest[p] not in ':/?,':
                p += 1
            host = rest[start:p]
        hosts.append(host)
        port = ''
        if p < n and rest[p] == ':':
            start = p + 1
            p = start
            while p < n and rest[p] not in '/?,':
                p += 1
            port = rest[start:p]
        ports.append(port)
        end = rest[p] if p < n else None
        if end != ',':
            break
        p += 1
    _store(found, 'host', ','.join(_decode(h) for h in hosts), decoded=True)
    _store(found, 'port', ','.join(_decode(x) for x in ports), decoded=True)
    query = None
    if end == '/':
        dbname, sep, tail = rest[p + 1:].partition('?')
        _store(found, 'dbname', dbname)
        query = tail if sep else None
    elif end == '?':
        query = rest[p + 1:]
    if query is not None:
        _parse_query(query, found)


def _parse_query(query: str, found: Dict[str, str]) -> None:
    for pair in query.split('&') if query else []:
        key, sep, value = pair.partition('=')
        if not sep:
            raise ConninfoError('Connection URI: missing key/value separator "=" in a query parameter.')
        if '=' in value:
            raise ConninfoError('Connection URI: extra key/value separator "=" in a query parameter.')
        key, value = _decode(key), _decode(value)
        if key == 'ssl' and value == 'true':
            key, value = 'sslmode', 'require'
        found[key] = value


def _store(found: Dict[str, str], key: str, value: str, decoded: bool = False) -> None:
    """An empty part is not set (libpq: an empty dbname would force the default, the user name)."""
    value = value if decoded else _decode(value)
    if value:
        found[key] = value


def _decode(text: str) -> str:
    """Percent-decoding as libpq's conninfo_uri_decode: ``%`` and two hex digits (never ``%00``), UTF-8 bytes."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        if text[i] != '%':
            out.extend(text[i].encode('utf-8'))
            i += 1
            continue
        pair = text[i + 1:i + 3]
        if len(pair) != 2 or any(c not in '0123456789abcdefABCDEF' for c in pair):
            raise ConninfoError('Connection URI: invalid percent-encoded token.')
        if pair == '00':
            raise ConninfoError('Connection URI: forbidden value %00 in a percent-encoded value.')
        out.append(int(pair, 16))
        i += 3
    return out.decode('utf-8', errors='replace')
