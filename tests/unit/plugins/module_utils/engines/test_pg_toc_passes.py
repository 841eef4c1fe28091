# -*- coding: utf-8 -*-
"""``restore.toc_passes``: the entries of a ``pg_restore --list`` in pg_restore's three restore passes (main, ACL,
after the ACLs) and a last run (the event triggers), whatever the names: a desc, a schema and a name may all hold
spaces, so look-alikes (a column DEFAULT in a schema named "ACL", a MATERIALIZED VIEW in a schema named "DATA", a
trigger's comment in a schema named "- EVENT") are told apart by their catalog ids. The lines are as pg_restore 15
prints them."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import (
    has_event_triggers, may_hold_back, serial_list, toc_dependencies, toc_passes)
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.backup import pg_toc_summary

LISTING = """;
; Archive created at 2026-12-06 17:40:55 UTC
;     dbname: src
;
; Selected TOC Entries:
;
6; 2615 16395 SCHEMA - Sch ema -x=y 'q' \\ "d" ü fid7 nl role
3359; 0 0 ACL - SCHEMA "Sch ema -x=y 'q' \\ ""d"" ü" fid7 nl role
215; 1259 16396 TABLE ACL t owner
3360; 2604 16400 DEFAULT ACL t id owner
3362; 0 0 ACL ACL TABLE t owner
3363; 0 0 ACL ACL COLUMN t."Col nl" owner
217; 1259 16410 MATERIALIZED VIEW DATA mv owner
3349; 0 16396 TABLE DATA ACL t owner
3350; 0 16410 MATERIALIZED VIEW DATA DATA mv owner
3367; 0 0 ACL - LARGE OBJECT 707070 -fid7=x 'q' \\b
3204; 2606 16402 CONSTRAINT ACL t t_pkey owner
3400; 3466 16420 EVENT TRIGGER - acl10_evt postgres
3401; 0 0 COMMENT - EVENT TRIGGER acl10_evt postgres
3402; 0 0 COMMENT - EVENT TRIGGER trg ON tbl owner
2037; 826 16404 DEFAULT ACL ACL DEFAULT PRIVILEGES FOR TABLES owner
2038; 826 16405 DEFAULT ACL - DEFAULT PRIVILEGES FOR SEQUENCES fid7 nl role
"""


def test_entries_fall_in_pg_restores_passes():
    main, held, acl, post, last = toc_passes(LISTING)
    assert held == []
    assert acl == ['3359', '3362', '3363', '3367', '2037', '2038']
    assert post == ['3350']
    # the event trigger and its comment after everything else; the last COMMENT is a table trigger's in a schema
    # named "- EVENT" (no event trigger of that name): run after a DDL guard it would be refused, so it stays
    assert last == ['3400', '3401']
    assert main == ['6', '215', '3360', '217', '3349', '3204', '3402']


def test_an_empty_or_header_only_listing_has_no_entries():
    assert toc_passes('') == ([], [], [], [], [])
    assert toc_passes(';\n; Selected TOC Entries:\n;\n') == ([], [], [], [], [])
    assert serial_list('') is None and serial_list(VERBOSE) is None


def test_a_serial_restore_creates_the_event_triggers_last():
    """pg_restore without -j keeps a -L list's order (from a file and from a stream: no data entry moves): the
    event triggers and what goes with them move after the REFRESH MATERIALIZED VIEW, the rest keeps the dump's order
    (ACLs included: pg_restore's own passes still put them after the main entries)."""
    listing = LISTING.replace('3402; 0 0 COMMENT - EVENT TRIGGER trg ON tbl owner\n',
                              '3402; 0 0 SECURITY LABEL - EVENT TRIGGER acl10_evt postgres\n'
                              '3403; 0 0 COMMENT - EVENT TRIGGER acl10_evt other\n')
    assert has_event_triggers(listing) and not has_event_triggers(VERBOSE)
    ids = [line.split(';')[0] for line in serial_list(listing).splitlines()]
    assert ids == ['6', '3359', '215', '3360', '3362', '3363', '217', '3349', '3350', '3367', '3204', '3403', '2037',
                   '2038', '3400', '3401', '3402']


# ``pg_restore --list --verbose`` of a dump with a domain's NOT VALID constraint (pg_dump puts it in post-data,
# depending on the domain only), a table's NOT VALID CHECK (it depends on its table: pg_restore -j waits for the
# table's data), a partitioned table's and an inheritance parent's (their ALTER TABLE reaches partitions and
# children whose data pg_restore -j does not wait for), a partitioned table's trigger (its partitions get it) and a
# table's, a comment on each and a primary key.
VERBOSE = """;
; Selected TOC Entries:
;
6; 2615 17565 SCHEMA - app3 fid_owner
1089; 1247 17566 DOMAIN app3 small postgres
;\tdepends on: 6
1091; 1247 17580 DOMAIN app3 "CHECK CONSTRAINT" postgres
;\tdepends on: 6
220; 1259 17567 TABLE app3 dom postgres
;\tdepends on: 1089 6
221; 1259 17571 TABLE app3 legacy postgres
;\tdepends on: 6
214; 1259 52503 TABLE app3 parent postgres
;\tdepends on: 6
215; 1259 52506 TABLE app3 part1 postgres
;\tdepends on: 214 6
216; 1259 52511 TABLE app3 inh_parent postgres
;\tdepends on: 6
217; 1259 52514 FOREIGN TABLE app3 inh_child postgres
;\tdepends on: 216 6
3210; 0 0 TABLE ATTACH app3 part1 postgres
;\tdepends on: 215 214
3737; 0 17567 TABLE DATA app3 dom postgres
;\tdepends on: 220
3736; 0 17571 TABLE DATA app3 legacy postgres
;\tdepends on: 221
3735; 0 52506 TABLE DATA app3 part1 postgres
;\tdepends on: 215
3546; 2606 17575 CHECK CONSTRAINT app3 legacy v_pos postgres
;\tdepends on: 221 221
3547; 2606 17576 CONSTRAINT app3 legacy legacy_pkey postgres
;\tdepends on: 221
1090; 2606 17570 CHECK CONSTRAINT app3 small small_lt_100 postgres
;\tdepends on: 1089
1092; 2606 17581 CONSTRAINT app3 "CHECK CONSTRAINT" nn postgres
;\tdepends on: 1091
3211; 2606 52509 CHECK CONSTRAINT app3 parent v_pos postgres
;\tdepends on: 214 214
3213; 2606 52517 FK CONSTRAINT app3 inh_parent w_fk postgres
;\tdepends on: 216 216 3547
3300; 2620 52520 TRIGGER app3 parent parent_stamp postgres
;\tdepends on: 214 1
3301; 2620 52521 TRIGGER app3 legacy legacy_stamp postgres
;\tdepends on: 221 1
3762; 0 0 COMMENT app3 CONSTRAINT small_lt_100 ON DOMAIN small postgres
;\tdepends on: 1090
3763; 0 0 COMMENT app3 CONSTRAINT v_pos ON legacy postgres
;\tdepends on: 3546
3764; 0 0 SECURITY LABEL app3 CONSTRAINT small_lt_100 ON DOMAIN small postgres
;\tdepends on: 3762 1090
3757; 0 0 ACL app3 TYPE small postgres
;\tdepends on: 1089
"""
HELD = ['1090', '1092', '3211', '3213', '3300', '3762', '3764']


def test_a_constraint_reaching_rows_another_entry_loads_comes_after_the_data():
    main, held, acl, post, _last = toc_passes(VERBOSE, VERBOSE)
    # pg_restore -j could add small_lt_100 before the COPY into dom ran: 'value for domain app3.small violates
    # check constraint' on the row the source kept; any constraint of a domain (a NOT NULL one, PostgreSQL 17);
    # a partitioned table's (before part1's COPY), an inheritance parent's (before its child's); before the ACLs,
    # as in pg_restore's own main pass
    assert held == HELD and post == []
    assert acl == ['3757']
    # a table's own CHECK waits for that table's data in pg_restore -j: kept with the load, as its primary key
    assert main == ['6', '1089', '1091', '220', '221', '214', '215', '216', '217', '3210', '3737', '3736', '3735',
                    '3546', '3547', '3301', '3763']


def test_the_runs_are_made_of_the_plain_listings_entries():
    # --verbose also lists what the restore leaves out (the database's ACL without --create, the pre-data of a
    # --section=post-data run): what is held back is still known, but no run is made of those
    plain = '\n'.join(line for line in VERBOSE.splitlines()
                      if 'depends on' not in line and not line.startswith(('3757;', '1089;', '214;', '216;')))
    main, held, acl, post, _last = toc_passes(plain, VERBOSE)
    assert acl == [] and held == HELD and '214' not in main
    # without the dependencies nothing says which constraint is a domain's: kept where it was
    main, held, acl, post, _last = toc_passes(plain)
    assert held == [] and '1090' in main


def test_dependencies_are_read_from_the_verbose_listing_only():
    depends, guarded = toc_dependencies(VERBOSE)
    assert depends['3764'] == ['3762', '1090'] and '6' not in depends
    assert guarded == {'1089', '1091', '214', '216'}
    assert toc_dependencies(LISTING) == ({}, set())
    # a table named "DOMAIN x" is not a domain
    assert toc_dependencies('1; 1259 1 TABLE DOMAIN x o\n2; 2606 2 CHECK CONSTRAINT a b c o\n;\tdepends on: 1\n'
                            )[1] == set()


def test_a_verbose_listing_is_read_only_when_a_constraint_may_be_held_back():
    assert may_hold_back(VERBOSE)
    assert not may_hold_back('3547; 2606 17576 CONSTRAINT app3 legacy legacy_pkey postgres\n')
    assert not may_hold_back(LISTING)
    assert may_hold_back('3301; 2620 52521 TRIGGER app3 legacy legacy_stamp postgres\n')


def test_a_name_cannot_write_an_entry_of_its_own():
    """pg_restore prints a name with its newlines replaced, but not a form feed, a vertical tab, U+0085 or U+2028,
    which str.splitlines would take for line ends: the 'entry' in the name would load table 20's data twice (in
    the ACL run) or move it after its trigger."""
    listing = ('10; 1259 1 TABLE public victim o\n'
               '11; 1259 2 TABLE public evil\x0c20; 0 0 ACL - x o\n'
               '12; 1259 3 TABLE public evil\u2028 20; 3466 1 EVENT TRIGGER - x o\n'
               '13; 1259 4 TABLE public evil\x0b\x1c\x85 20; 0 0 MATERIALIZED VIEW DATA a b o\n'
               '20; 0 1 TABLE DATA public victim o\n'
               '20; 0 0 ACL - SCHEMA public o\n'
               '30; 2620 5 TRIGGER public victim t o\n')
    runs = toc_passes(listing)
    assert runs.main == ['10', '11', '12', '13', '20', '30'] and runs.acl == [] and runs.post == [] and runs.last == []
    assert serial_list(listing) is None


def test_the_backups_listing_counts_are_not_written_by_names():
    listing = ('10; 1259 1 TABLE public evil\x0c20; 0 1 TABLE DATA public x o\n'
               '11; 1259 2 TABLE public ok\u2028 21; 1259 3 TABLE public y o\n'
               '20; 0 1 TABLE DATA public evil o\n')
    assert pg_toc_summary(listing) == {'tables': 2, 'data_entries': 1}
