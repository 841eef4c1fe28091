"""Whose is a drill's scratch target: the rules of drill/scratch.py on what the server says of the name.

The harness's MariaDB runs with lower_case_table_names=0; a server with 1 or 2 (names compared without case) is
reached here through the state its ``scratch_state`` returns.
"""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.drill import scratch

FOLDING = {'fold_case': True, 'marks': True, 'lower_case_table_names': 1}


def test_a_case_variant_of_the_source_is_the_source_where_the_server_folds_case():
    with pytest.raises(OpsReadyError, match='is the source database.*lower_case_table_names=1'):
        scratch.guard_database(dict(FOLDING, exists=True, name='shop', comment=''), 'Shop', 'shop')
    # with lower_case_table_names=0 (and on PostgreSQL) Shop is another database: absent, so the drill creates it
    absent = scratch.guard_database({'exists': False, 'fold_case': False}, 'Shop', 'shop')
    assert absent == {'exists': False, 'marked': False}


@pytest.mark.parametrize('comment', ['', 'billing ledger', 'OPSREADY DR_DRILL SCRATCH COPY OF shop'])
def test_an_unmarked_existing_database_is_refused_saying_what_to_do(comment):
    with pytest.raises(OpsReadyError) as caught:
        scratch.guard_database(dict(FOLDING, exists=True, name='shop_drill', comment=comment), 'SHOP_DRILL', 'shop')
    assert 'not created by a DR drill' in caught.value.message
    assert 'another scratch name' in caught.value.message and 'drop it yourself' in caught.value.message


def test_a_server_without_database_comments_never_lets_an_existing_scratch_through():
    with pytest.raises(OpsReadyError, match='keeps no database comment'):
        scratch.guard_database({'exists': True, 'name': 'shop_drill', 'marks': False}, 'shop_drill', 'shop')


def test_a_marked_leftover_is_the_drills():
    mark = scratch.mark_text('shop')
    assert len(mark) <= 1024  # MariaDB's limit for a database comment
    assert scratch.guard_database(dict(FOLDING, exists=True, name='shop_drill', comment=mark), 'shop_drill',
                                  'shop')['marked']


@pytest.mark.parametrize('name', ['shop_drill__opsready_restore_0badc0de', 'x__OPSREADY_old_1'])
def test_the_restore_temporary_names_are_never_a_scratch(name):
    with pytest.raises(OpsReadyError, match='temporary databases'):
        scratch.guard_database(dict(FOLDING, exists=False), name, 'shop')


def test_datadir_rules(tmp_path):
    new = scratch.guard_datadir(str(tmp_path / 'new'))
    assert new == {'datadir': str(tmp_path / 'new'), 'exists': False, 'marked': False}
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert scratch.guard_datadir(str(empty))['exists']
    cluster = tmp_path / 'cluster'
    (cluster / 'global').mkdir(parents=True)
    (cluster / 'global' / 'pg_control').write_bytes(b'\0' * 64)
    with pytest.raises(OpsReadyError, match='holds a PostgreSQL cluster'):
        scratch.guard_datadir(str(cluster))
    scratch.mark_datadir(str(cluster), 'app')
    assert scratch.guard_datadir(str(cluster))['marked']
    # a marker that is a link (planted to point anywhere) is no marker
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'PG_VERSION').write_text('15\n')
    (other / scratch.MARKER_FILE).symlink_to(cluster / scratch.MARKER_FILE)
    with pytest.raises(OpsReadyError, match='not created by a DR drill'):
        scratch.guard_datadir(str(other))
