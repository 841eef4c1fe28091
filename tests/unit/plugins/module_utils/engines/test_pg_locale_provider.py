# -*- coding: utf-8 -*-
"""``restore.check_locale_provider`` for a target server built without ICU, which cannot run here (every PostgreSQL
on this machine has ICU): the server's answer is stood in for (its version, whether it has any ICU collation), the
rest is the real function. A backup of an ICU database onto such a server is refused before anything is created
(check mode foresaw nothing; the real run's CREATE DATABASE failed with a hint to install a libc locale). The
builtin provider on a PostgreSQL 15 server is held against a real server in
tests/fidelity/test_postgresql_round10.py."""

from __future__ import annotations

from typing import List

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.backup.manifest import Manifest
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql.restore import (
    check_locale_provider)


class _Conn:
    def where(self, port: int) -> str:
        return 'db1:%d' % port


class _Server:
    """What the server answers (version, any ICU collation), and the queries it was asked."""

    def __init__(self, version: str, icu: bool) -> None:
        self.conn = _Conn()
        self.answer = [[version, 'true' if icu else 'false']]
        self.asked: List[str] = []

    def query(self, sql: str) -> List[List[str]]:
        self.asked.append(sql)
        return self.answer


def manifest(provider: dict) -> Manifest:
    return Manifest({'id': 'postgresql-app-full-1.dump.zst', 'artifact': 'postgresql-app-full-1.dump.zst',
                     'engine': 'postgresql', 'kind': 'full', 'database': 'app', 'started': '2026-12-06T00:00:00Z',
                     'finished': '2026-12-06T00:00:01Z', 'size': 1, 'sha256': '0' * 64, 'compression': 'zstd',
                     'database_properties': {'encoding': 'UTF8', 'collate': 'C', 'ctype': 'C',
                                             'locale_provider': provider}}, '/backups')


ICU = {'datlocprovider': 'i', 'daticulocale': 'de-DE-u-kn-true'}


def test_an_icu_database_onto_a_server_without_icu_is_refused():
    with pytest.raises(OpsReadyError) as info:
        check_locale_provider(_Server('150018', icu=False), manifest(ICU))   # type: ignore[arg-type]
    msg = info.value.message
    assert 'ICU locale provider' in msg and 'de-DE-u-kn-true' in msg and 'db1:5432' in msg, msg
    assert 'built with ICU' in msg and 'Nothing was restored' in msg and 'locale-gen' not in msg, msg


def test_an_icu_database_onto_a_server_with_icu_goes_on():
    check_locale_provider(_Server('170002', icu=True), manifest(ICU))   # type: ignore[arg-type]
    check_locale_provider(_Server('150018', icu=True), manifest(ICU))   # type: ignore[arg-type]


def test_builtin_needs_postgresql_17():
    builtin = {'datlocprovider': 'b', 'datlocale': 'C.UTF-8'}
    check_locale_provider(_Server('170002', icu=False), manifest(builtin))   # type: ignore[arg-type]
    with pytest.raises(OpsReadyError, match='builtin locale provider'):
        check_locale_provider(_Server('160004', icu=True), manifest(builtin))   # type: ignore[arg-type]


def test_libc_databases_ask_nothing():
    server = _Server('150018', icu=False)
    check_locale_provider(server, manifest({'datlocprovider': 'c'}))   # type: ignore[arg-type]
    check_locale_provider(server, manifest({}))   # type: ignore[arg-type]
    assert server.asked == []
