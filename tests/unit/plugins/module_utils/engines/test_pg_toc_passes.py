# -*- coding: utf-8 -*-
"""``restore.toc_passes``: the entries of a ``pg_restore --list`` in pg_restore's three restore passes (main, ACL,
after the ACLs), whatever the names: a desc, a schema and a name may all hold spaces, so look-alikes (a column
DEFAULT in a schema named "ACL", a MATERIALIZED VIEW in a schema named "DATA", a trigger's comment in a schema named
"- EVENT") are told apart by their catalog ids. The lines are as pg_restore 15 prints them."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import toc_passes

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
