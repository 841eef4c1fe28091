"""The one libpq connection-string parser (conninfo.py): key=value and URI grammar as libpq's conninfo_parse and
conninfo_uri_parse read them (no server), and the callers that used hand-written parsers of their own."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import (
    conninfo, foreign, promote, replication)


@pytest.mark.parametrize('text, expected', [
    ('', {}),
    ('   ', {}),
    ('host=h port=5432', {'host': 'h', 'port': '5432'}),
    ('  host = h \t port\n=\n5432  ', {'host': 'h', 'port': '5432'}),          # whitespace around '='
    ("password='a b' user=''", {'password': 'a b', 'user': ''}),               # quoted, empty
    (r"password='it\'s \\ x'", {'password': "it's \\ x"}),                     # escapes inside quotes
    (r'password=a\ b\\c\'d', {'password': "a b\\c'd"}),                         # escapes outside quotes
    ("password=ab'c host=x", {'password': "ab'c", 'host': 'x'}),               # a quote inside a bare value
    ('host=a host=b', {'host': 'b'}),                                           # the last one wins
    ("host= port=5", {'host': 'port=5'}),                                       # libpq skips blanks after '='
    ('password=x\\', {'password': 'x'}),                                        # a trailing backslash is dropped
    ("application_name='x''y'", {'application_name': 'x'}),                    # two values run together: the
])                                                                              # first ends at its quote
def test_key_value(text, expected):
    if text == "application_name='x''y'":
        # libpq: after the closing quote the next keyword starts at once ('y' without '='): an error
        with pytest.raises(conninfo.ConninfoError):
            conninfo.parse(text)
        assert conninfo.parse(text, strict=False) == expected
        return
    assert conninfo.parse(text) == expected


@pytest.mark.parametrize('text, why', [
    ('host', 'missing "=" after "host"'),
    ('host=h port', 'missing "=" after "port"'),
    ("password='open", 'unterminated quoted string'),
    ('=x', 'missing keyword'),
])
def test_key_value_errors_never_show_the_text(text, why):
    with pytest.raises(conninfo.ConninfoError) as err:
        conninfo.parse(text + ' password=S3CRET')
    assert why in str(err.value) and 'S3CRET' not in str(err.value)
    assert isinstance(err.value, OpsReadyError)


@pytest.mark.parametrize('text, expected', [
    ('postgresql://', {}),
    ('postgres://', {}),
    ('postgresql://h', {'host': 'h'}),
    ('postgresql://u:p%40ss@h:5433/db', {'user': 'u', 'password': 'p@ss', 'host': 'h', 'port': '5433', 'dbname': 'db'}),
    ('postgresql://r%40x@[::1]:5434/db%20x?sslmode=require&application_name=a%26b',
     {'user': 'r@x', 'host': '::1', 'port': '5434', 'dbname': 'db x', 'sslmode': 'require', 'application_name': 'a&b'}),
    ('postgresql://[2001:db8::1]/d', {'host': '2001:db8::1', 'dbname': 'd'}),
    ('postgresql://h1:5432,h2:5433,[::1]:5434/d', {'host': 'h1,h2,::1', 'port': '5432,5433,5434', 'dbname': 'd'}),
    ('postgresql://h1,h2:6/d', {'host': 'h1,h2', 'port': ',6', 'dbname': 'd'}),
    ('postgresql:///d?host=%2Fvar%2Frun%2Fpostgresql', {'dbname': 'd', 'host': '/var/run/postgresql'}),
    ('postgresql://h/?sslmode=verify-full', {'host': 'h', 'sslmode': 'verify-full'}),   # empty dbname: not set
    ('postgresql://h?ssl=true', {'host': 'h', 'sslmode': 'require'}),
    ('postgresql://h?application_name=a+b', {'host': 'h', 'application_name': 'a+b'}),   # '+' is not a space
    ('postgresql://u@h', {'user': 'u', 'host': 'h'}),
    ('postgresql://:pw@h', {'password': 'pw', 'host': 'h'}),
    ('postgresql://h/my%2Fdb', {'host': 'h', 'dbname': 'my/db'}),
])
def test_uri(text, expected):
    assert conninfo.parse(text) == expected


@pytest.mark.parametrize('text', ['postgresql://h/%zz', 'postgresql://h/a%00b', 'postgresql://[::1/d',
                                  'postgresql://[]/d', 'postgresql://h?sslmode', 'postgresql://h?a=b=c',
                                  'postgresql://[::1]x/d'])
def test_uri_errors(text):
    with pytest.raises(conninfo.ConninfoError):
        conninfo.parse(text)
    assert isinstance(conninfo.parse(text, strict=False), dict)


def test_uri_prefix_is_case_sensitive_like_libpq():
    # libpq compares the designator with strncmp: an upper-case one is read as key=value (and fails there)
    with pytest.raises(conninfo.ConninfoError):
        conninfo.parse('POSTGRESQL://h/d')


# -- the callers: behaviour kept, except where their own parser was wrong -----------------------------------------
def test_promote_reads_a_bare_value_with_a_quote():
    """Was wrong: promote's regex refused ``password=ab'c`` (libpq accepts it), so a standby whose
    primary_conninfo had such a password could not be re-pointed."""
    assert promote.parse_conninfo("user=rep password=ab'c") == {'user': 'rep', 'password': "ab'c"}


def test_promote_reads_a_uri_primary_conninfo():
    """Was wrong: a primary_conninfo written as a URI (legal) could not be read; follow_conninfo failed."""
    assert promote.parse_conninfo('postgresql://rep:pw@old:5432/x?sslmode=require') == {
        'user': 'rep', 'password': 'pw', 'host': 'old', 'port': '5432', 'dbname': 'x', 'sslmode': 'require'}


def test_promote_error_does_not_show_the_password():
    """Was wrong: the error quoted the whole connection string, replication password included."""
    with pytest.raises(OpsReadyError) as err:
        promote.parse_conninfo("password='S3CRET")
    assert 'S3CRET' not in str(err.value)


def test_replication_summary_and_foreign_are_lenient():
    assert replication.conninfo_summary("host=h password=x port=5 junk") == {'host': 'h', 'port': '5'}
    assert replication.conninfo_summary(None) is None
    assert foreign.parse_conninfo('not a connection string') == {}
    expected = {'user': 'u', 'host': 'h1,h2', 'port': '1,2', 'dbname': 'd'}
    assert foreign.parse_conninfo('postgresql://u@h1:1,h2:2/d') == expected   # was: the hosts dropped


def _libpq_parse(lib, text):
    import ctypes

    class Option(ctypes.Structure):
        _fields_ = [('keyword', ctypes.c_char_p), ('envvar', ctypes.c_char_p), ('compiled', ctypes.c_char_p),
                    ('val', ctypes.c_char_p), ('label', ctypes.c_char_p), ('dispchar', ctypes.c_char_p),
                    ('dispsize', ctypes.c_int)]
    lib.PQconninfoParse.restype = ctypes.POINTER(Option)
    lib.PQconninfoParse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    err = ctypes.c_char_p()
    options = lib.PQconninfoParse(text.encode(), ctypes.byref(err))
    if not options:
        return 'error'
    found, i = {}, 0
    while options[i].keyword:
        if options[i].val is not None:
            found[options[i].keyword.decode()] = options[i].val.decode()
        i += 1
    return found


def test_same_as_libpq_itself():
    """Every string above, read by libpq's own PQconninfoParse (when the library is installed) and by ours."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library('pq')
    if not name:
        pytest.skip('libpq is not installed')
    lib = ctypes.CDLL(name)
    cases = [c[0] for c in test_key_value.pytestmark[0].args[1]] + [c[0] for c in test_uri.pytestmark[0].args[1]] \
        + test_uri_errors.pytestmark[0].args[1] + ['host', "password='open", '=x', 'POSTGRESQL://h/d']
    for text in cases:
        try:
            ours = conninfo.parse(text)
        except conninfo.ConninfoError:
            ours = 'error'
        assert _libpq_parse(lib, text) == ours, text
