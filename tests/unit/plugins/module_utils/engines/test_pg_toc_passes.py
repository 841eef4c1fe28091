# -*- coding: utf-8 -*-
"""``restore.toc_passes``: the entries of a ``pg_restore --list`` in pg_restore's three restore passes (main, ACL,
after the ACLs), whatever the names: a desc, a schema and a name may all hold spaces, so look-alikes (a column
DEFAULT in a schema named "ACL", a MATERIALIZED VIEW in a schema named "DATA", a trigger's comment in a schema named
"- EVENT") are told apart by their catalog ids. The lines are as pg_restore 15 prints them."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import (
    has_domains, toc_dependencies, toc_passes)

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
    main, acl, post = toc_passes(LISTING)
    assert acl == ['3359', '3362', '3363', '3367', '2037', '2038']
    # the last COMMENT is a trigger's in a schema named "- EVENT": moving it after the ACLs is harmless
    assert post == ['3350', '3400', '3401', '3402']
    assert main == ['6', '215', '3360', '217', '3349', '3204']


def test_an_empty_or_header_only_listing_has_no_entries():
    assert toc_passes('') == ([], [], [])
    assert toc_passes(';\n; Selected TOC Entries:\n;\n') == ([], [], [])


# ``pg_restore --list --verbose`` of a dump with a domain's NOT VALID constraint (pg_dump puts it in post-data,
# depending on the domain only), a table's NOT VALID CHECK (it depends on its table: pg_restore -j waits for the
# table's data), a comment on each and a column's domain that depends on nothing held back.
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
3737; 0 17567 TABLE DATA app3 dom postgres
;\tdepends on: 220
3736; 0 17571 TABLE DATA app3 legacy postgres
;\tdepends on: 221
3546; 2606 17575 CHECK CONSTRAINT app3 legacy v_pos postgres
;\tdepends on: 221 221
1090; 2606 17570 CHECK CONSTRAINT app3 small small_lt_100 postgres
;\tdepends on: 1089
1092; 2606 17581 CONSTRAINT app3 "CHECK CONSTRAINT" nn postgres
;\tdepends on: 1091
3762; 0 0 COMMENT app3 CONSTRAINT small_lt_100 ON DOMAIN small postgres
;\tdepends on: 1090
3763; 0 0 COMMENT app3 CONSTRAINT v_pos ON legacy postgres
;\tdepends on: 3546
3764; 0 0 SECURITY LABEL app3 CONSTRAINT small_lt_100 ON DOMAIN small postgres
;\tdepends on: 3762 1090
3757; 0 0 ACL app3 TYPE small postgres
;\tdepends on: 1089
"""


def test_a_domains_constraint_and_what_depends_on_it_come_after_the_data():
    main, acl, post = toc_passes(VERBOSE, toc_dependencies(VERBOSE))
    # pg_restore -j could add small_lt_100 before the COPY into dom ran: 'value for domain app3.small violates
    # check constraint' on the row the source kept; any constraint of a domain (a NOT NULL one, PostgreSQL 17)
    assert post == ['1090', '1092', '3762', '3764']
    assert acl == ['3757']
    assert main == ['6', '1089', '1091', '220', '221', '3737', '3736', '3546', '3763']


def test_the_runs_are_made_of_the_plain_listings_entries():
    # --verbose also lists what the restore leaves out (the database's ACL without --create): not a run of its own
    plain = '\n'.join(line for line in VERBOSE.splitlines() if 'depends on' not in line and '3757' not in line)
    main, acl, post = toc_passes(plain, toc_dependencies(VERBOSE))
    assert acl == [] and post == ['1090', '1092', '3762', '3764']
    # without the dependencies nothing says which constraint is a domain's: kept where it was
    main, acl, post = toc_passes(plain)
    assert post == [] and '1090' in main


def test_dependencies_are_read_from_the_verbose_listing_only():
    assert toc_dependencies(VERBOSE)['3764'] == ['3762', '1090']
    assert '6' not in toc_dependencies(VERBOSE) and toc_dependencies(LISTING) == {}
    assert has_domains(VERBOSE) and not has_domains(LISTING)
    # a table named "DOMAIN x" is not a domain
    assert not has_domains('220; 1259 17567 TABLE app3 dom postgres\n221; 1259 1 DOMAIN x y postgres\n')
