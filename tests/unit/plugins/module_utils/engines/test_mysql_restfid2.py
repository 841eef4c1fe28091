"""MariaDB restore: the GRANT statements given to the restored database (engines/mysql/grants.py) and the dump
line rewriter (data locks, sequence defaults)."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql import grants as mg

GRANTS = {
    'database': [{'user': 'app', 'host': '%', 'privileges': ['INSERT', 'SELECT'], 'grantable': False, 'db': 'a_b'},
                 {'user': 'r', 'host': '', 'privileges': ['SELECT'], 'grantable': True, 'db': 'a\\_b'}],
    'tables': [{'user': "o`'u", 'host': 'localhost', 'table': 't`x', 'privileges': ['DELETE'], 'grantable': True}],
    'columns': [{'user': 'rep', 'host': '10.%', 'table': 't', 'column': 'a', 'privileges': ['SELECT', 'UPDATE']},
                {'user': 'rep', 'host': '10.%', 'table': 't', 'column': 'b', 'privileges': ['SELECT']}],
    'routines': [{'user': 'app', 'host': '%', 'routine': 'p', 'type': 'PROCEDURE', 'privileges': ['EXECUTE'],
                  'grantable': False},
                 {'user': 'app', 'host': '%', 'routine': 'pk', 'type': 'PACKAGE', 'privileges': ['EXECUTE'],
                  'grantable': False}],
}
ACCOUNTS = [('app', '%'), ('r', ''), ("o`'u", 'localhost'), ('rep', '10.%')]


def test_grant_statements_name_the_target_exactly_and_quote_accounts_with_backticks():
    statements, skipped = mg.grant_statements(GRANTS, 'x_y%', ACCOUNTS, ['r'], source='a_b')
    sql = [s for _what, s in statements]
    assert sql == [
        'GRANT INSERT, SELECT ON `x\\_y\\%`.* TO `app`@`%`',
        'GRANT SELECT ON `x\\_y\\%`.* TO `r` WITH GRANT OPTION',
        "GRANT DELETE ON `x_y%`.`t``x` TO `o``'u`@`localhost` WITH GRANT OPTION",
        'GRANT SELECT (`a`, `b`), UPDATE (`a`) ON `x_y%`.`t` TO `rep`@`10.%`',
        'GRANT EXECUTE ON PROCEDURE `x_y%`.`p` TO `app`@`%`',
        # packages (Oracle mode): GRANT ... ON PACKAGE parses only under sql_mode=ORACLE before MariaDB 11.4
        "SET SESSION sql_mode = 'ORACLE'; GRANT EXECUTE ON PACKAGE `x_y%`.`pk` TO `app`@`%`"]
    assert skipped == []


def test_same_name_keeps_the_recorded_form_and_missing_accounts_are_named():
    statements, skipped = mg.grant_statements(GRANTS, 'a_b', [('app', '%')], [], source='a_b')
    assert [s for _w, s in statements][0] == 'GRANT INSERT, SELECT ON `a_b`.* TO `app`@`%`'
    assert any("for r@'' (no such account" in note for note in skipped)
    assert any("o`'u@localhost" in note for note in skipped)


def test_old_manifest_without_grants():
    assert mg.apply_grants(None, None, 'x')['restored'] is False


class _NoMysqlSchema:
    def query(self, sql):
        from ansible_collections.opsready.operations.plugins.module_utils.common.errors import ToolError
        raise ToolError('mariadb failed: SELECT command denied to user', stderr='denied')


def test_a_login_that_cannot_read_the_accounts_reports_instead_of_failing_after_the_swap():
    result = mg.apply_grants(_NoMysqlSchema(), GRANTS, 'x')
    assert result['restored'] is False and 'SELECT ON mysql.*' in result['reason']
    assert mg.apply_grants(_NoMysqlSchema(), {'database': []}, 'x') == {'restored': True, 'applied': [],
                                                                        'skipped': []}


def test_dump_line_rewriter_drops_data_locks_and_requalifies_sequence_defaults_outside_delimiter_blocks():
    from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import DumpLineRewriter
    dump = (b"CREATE TABLE `u` (\n  `id` int(11) NOT NULL DEFAULT nextval(`src`.`sq`),\n"
            b"  `c` varchar(9) DEFAULT 'nextval(`src`.x',\n) ENGINE=InnoDB;\n"
            b"LOCK TABLES `u` WRITE;\nINSERT INTO `u` VALUES (1,'LOCK TABLES `u` WRITE;\\nUNLOCK TABLES;');\n"
            b"UNLOCK TABLES;\nDELIMITER ;;\nCREATE PROCEDURE p() SELECT 'x\nUNLOCK TABLES;\n  `a` b DEFAULT "
            b"nextval(`src`.`sq`)';;\nDELIMITER ;\nLOCK TABLES `v``w` WRITE;\r\nUNLOCK TABLES;\n")
    for size in (1, 7, 4096):
        rewriter = DumpLineRewriter('src', 'tmp')
        out = b''.join(rewriter.feed(dump[i:i + size]) for i in range(0, len(dump), size)) + rewriter.flush()
        assert out == (b"CREATE TABLE `u` (\n  `id` int(11) NOT NULL DEFAULT nextval(`tmp`.`sq`),\n"
                       b"  `c` varchar(9) DEFAULT 'nextval(`src`.x',\n) ENGINE=InnoDB;\n"
                       b"INSERT INTO `u` VALUES (1,'LOCK TABLES `u` WRITE;\\nUNLOCK TABLES;');\n"
                       b"DELIMITER ;;\nCREATE PROCEDURE p() SELECT 'x\nUNLOCK TABLES;\n  `a` b DEFAULT "
                       b"nextval(`src`.`sq`)';;\nDELIMITER ;\n"), size
