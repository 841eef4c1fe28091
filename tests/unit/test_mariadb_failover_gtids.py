"""MariaDB rejoin's errant-transaction rule (engines/mysql/promote.errant_gtids): per domain *and* server id, so
a new primary that wrote on past the old primary's last GTID does not hide what the old one never replicated."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.promote import (
    _errant_text, errant_gtids, quote_literal)


def test_nothing_errant_when_the_new_primary_logged_the_old_ones_last_gtid_or_later():
    assert errant_gtids('0-1-100', '0-1-100,0-2-150', '0-2-150') == []
    assert errant_gtids('0-1-100', '0-1-120', '0-1-120') == []
    assert errant_gtids('', '0-2-5', '0-2-5') == []


def test_old_primary_writes_after_promotion_are_errant_even_below_the_new_sequence():
    # old primary (server 1) reached 105; the new primary (server 2) received up to 100, then wrote 101..150
    found = errant_gtids('0-1-105', '0-1-100,0-2-150', '0-2-150')
    assert found == [{'gtid': '0-1-105', 'domain': 0, 'server_id': 1, 'primary_has': '0-1-100', 'transactions': 5}]
    assert _errant_text(found) == '5 transaction(s) up to 0-1-105'


def test_without_log_slave_updates_the_replayed_position_counts():
    # the new primary's binlog has only its own writes; gtid_current_pos shows what it replayed from server 1
    assert errant_gtids('0-1-100', '0-2-3', '0-1-100') == []
    assert errant_gtids('0-1-101', '0-2-3', '0-1-100')[0]['transactions'] == 1


def test_unknown_server_or_domain_is_errant_with_an_unknown_count():
    found = errant_gtids('0-1-10,7-1-3', '0-1-10', '0-1-10')
    assert [e['gtid'] for e in found] == ['7-1-3'] and found[0]['transactions'] is None
    assert _errant_text(found) == 'transactions up to 7-1-3'


@pytest.mark.parametrize('bad', ['0-1', 'a-b-c', '0-1-2-3', '0-1-x'])
def test_malformed_gtids_are_refused(bad):
    with pytest.raises(OpsReadyError, match='not a MariaDB GTID'):
        errant_gtids(bad, '', '')


@pytest.mark.parametrize('value', ["o'brien", 'back\\slash', 'ünï', '#?%'])
def test_replication_literals_escape_quote_and_backslash(value):
    lit = quote_literal(value)
    assert lit.startswith("'") and lit.endswith("'") and "\\'" not in value
    assert lit[1:-1].replace("\\'", '').count("'") == 0


def test_replication_literals_refuse_line_breaks():
    with pytest.raises(OpsReadyError):
        quote_literal('a\nb')
