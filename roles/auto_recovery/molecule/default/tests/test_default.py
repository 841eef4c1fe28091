"""A healthy host: nothing deleted, no incident recorded."""


def test_old_file_kept_when_disk_not_full(host):
    assert host.file('/tmp/molecule-auto-recovery/logs/old.gz').exists


def test_no_incident(host):
    assert not host.file('/tmp/molecule-auto-recovery/incidents.jsonl').exists
