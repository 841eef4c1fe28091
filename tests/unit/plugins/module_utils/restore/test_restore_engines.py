"""Engine-side restore helpers that need no server: time zones, target checks on real directories."""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.timeutil import parse_time
from ansible_collections.opsready.operations.plugins.module_utils.engines.postgresql import pitr as postgresql_pitr
from ansible_collections.opsready.operations.plugins.module_utils.engines.mysql.restore import stop_datetime
from ansible_collections.opsready.operations.plugins.module_utils.restore.plan import RestoreRequest
from ansible_collections.opsready.operations.plugins.module_utils.restore.run import check_request


def test_stop_datetime_is_utc_whatever_the_input_zone():
    assert stop_datetime(parse_time('2026-11-29T11:15:30.9+01:00')) == '2026-11-29 10:15:30'
    assert stop_datetime(datetime.datetime(2026, 11, 29, 23, 0, tzinfo=datetime.timezone(
        datetime.timedelta(hours=-5)))) == '2026-11-30 04:00:00'


def test_pitr_target_checks(tmp_path):
    # as root the scratch server runs as postgres: its directory must be reachable (pytest's tmp is 0700)
    base = Path(tempfile.mkdtemp(prefix='opsready-unit-pitr-'))
    os.chmod(base, 0o711)
    datadir = base / 'data'
    request = RestoreRequest(engine='postgresql', src=str(tmp_path), datadir=str(datadir))
    if os.geteuid() == 0:
        with pytest.raises(OpsReadyError, match='cannot enter'):
            postgresql_pitr.check_target(RestoreRequest(engine='postgresql', src=str(tmp_path),
                                                        datadir=str(tmp_path / 'data')))
    try:
        assert postgresql_pitr.check_target(request)['exists'] is False
        datadir.mkdir()
        (datadir / 'PG_VERSION').write_text('15\n')
        with pytest.raises(OpsReadyError, match='not empty'):
            postgresql_pitr.check_target(request)
        request.replace = True
        assert postgresql_pitr.check_target(request)['exists'] is True
        # a live postmaster.pid (this very process) means a server runs there: never replaced
        (datadir / 'postmaster.pid').write_text('%d\n' % os.getpid())
        with pytest.raises(OpsReadyError, match='runs on'):
            postgresql_pitr.check_target(request)
    finally:
        shutil.rmtree(base)


def test_request_validation(tmp_path):
    with pytest.raises(OpsReadyError, match='Unknown engine'):
        check_request(RestoreRequest(engine='oracle', src=str(tmp_path), database='x'))
    check_request(RestoreRequest(engine='sqlserver', src=str(tmp_path), database='x'))  # implemented now
    with pytest.raises(OpsReadyError, match='database .the target. is required for engine sqlserver'):
        check_request(RestoreRequest(engine='sqlserver', src=str(tmp_path)))
    with pytest.raises(OpsReadyError, match=r'datadir applies to physical recovery \(postgresql\) only, not engine'):
        check_request(RestoreRequest(engine='mariadb', src=str(tmp_path), database='x', datadir='/tmp/d'))
    with pytest.raises(OpsReadyError, match='not a backup directory'):
        check_request(RestoreRequest(engine='sqlite', src=str(tmp_path / 'nope'), database='x'))
    with pytest.raises(OpsReadyError, match='jobs must be 1'):
        check_request(RestoreRequest(engine='postgresql', src=str(tmp_path), database='x', jobs=0))
