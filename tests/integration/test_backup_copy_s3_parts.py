"""S3 multipart uploads with parts in flight, against the S3 test server (moto server mode, its minimum part size
lowered so a few-MB file makes a dozen parts): parts finishing out of order still make the exact object and the
exact SHA-256 of what was sent; at most ``concurrency`` parts are read ahead; a part the server refuses, or a read
that fails, while other parts are in flight stops the upload, names the part and leaves no multipart upload
behind; Object Lock settings reach a multipart upload.

The requests go to the real server; botocore's event hooks only watch them, hold one back (to force an order) or
give one a part number the server refuses."""

from __future__ import annotations

import collections
import datetime
import hashlib
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'build'))

from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError  # noqa: E402
from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import S3Store  # noqa: E402
from tests.harness.s3 import S3Server  # noqa: E402

PART = 256 * 1024
WAIT = 20


@pytest.fixture(scope='module')
def s3():
    with S3Server(env={'S3_UPLOAD_PART_MIN_SIZE': str(PART)}) as server:
        yield server


@pytest.fixture()
def bucket(s3, request):
    name = 'mp-' + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    s3.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket='object_lock' in request.node.name)
    return name


def make_store(s3, bucket, **kwargs) -> S3Store:
    store = S3Store(bucket, 'f', endpoint_url=s3.endpoint_url, access_key=s3.access_key, secret_key=s3.secret_key,
                    region=s3.region, **kwargs)
    store.part_size = PART   # below the 5 MiB S3 minimum that part_size_mb allows; this moto accepts it
    return store


def payload(tmp_path, size: int) -> Tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / 'artifact.bin'
    path.write_bytes(data)
    return path, data


def leftovers(s3, bucket) -> List[Any]:
    client = s3.client()
    return client.list_multipart_uploads(Bucket=bucket).get('Uploads', []) + \
        client.list_objects_v2(Bucket=bucket).get('Contents', [])


class Parts:
    """The UploadPart requests of one client: the order their sends start and their answers arrive, how many are
    in flight at once; ``hold(n, ...)`` makes part n wait (before it is sent) for other parts' events,
    ``refuse(n)`` gives part n a part number the server refuses (InvalidArgument, not retried)."""

    def __init__(self, client: Any) -> None:
        self.lock = threading.Lock()
        self.started: List[int] = []
        self.answered: List[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.events: Dict[Tuple[str, int], threading.Event] = collections.defaultdict(threading.Event)
        self.holds: Dict[int, List[Tuple[str, int]]] = {}
        self.refused: List[int] = []
        self.waits_timed_out: List[int] = []
        self.headers: Dict[int, Dict[str, str]] = {}
        self.started_before_answer: Dict[int, int] = {}
        events = client.meta.events
        events.register('before-parameter-build.s3.UploadPart', self._params)
        events.register('before-send.s3.UploadPart', self._send)
        events.register('after-call.s3.UploadPart', self._answer)

    def event(self, what: str, part: int) -> threading.Event:
        with self.lock:
            return self.events[(what, part)]

    def hold(self, part: int, until: List[Tuple[str, int]]) -> None:
        self.holds[part] = until

    def refuse(self, part: int) -> None:
        self.refused.append(part)

    def _params(self, params: Dict[str, Any], context: Dict[str, Any], **kwargs: Any) -> None:
        context['test_part'] = params['PartNumber']
        if params['PartNumber'] in self.refused:
            params['PartNumber'] = 10001   # S3 allows 1..10000

    def _send(self, request: Any, **kwargs: Any) -> None:
        number = int(re.search(r'partNumber=(\d+)', request.url).group(1))
        part = number if number <= 10000 else self.refused[0]
        with self.lock:
            self.started.append(part)
            self.headers[part] = headers(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.event('started', part).set()
        for what, other in self.holds.get(part, []):
            if not self.event(what, other).wait(WAIT):
                self.waits_timed_out.append(part)

    def _answer(self, context: Dict[str, Any], **kwargs: Any) -> None:
        part = context['test_part']
        with self.lock:
            self.answered.append(part)
            self.started_before_answer[part] = len(self.started)
            self.in_flight -= 1
        self.event('answered', part).set()


def headers(request: Any) -> Dict[str, str]:
    return {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


def read_position(path: Path) -> int:
    """Where this process's open handle on ``path`` stands (the upload's reader), -1 if none is open."""
    target = os.path.realpath(path)
    for fd in os.listdir('/proc/self/fd'):
        try:
            if os.readlink('/proc/self/fd/%s' % fd) == target:
                with open('/proc/self/fdinfo/%s' % fd) as info:
                    return int(re.search(r'pos:\s*(\d+)', info.read()).group(1))
        except OSError:
            continue
    return -1


def in_thread(target: Callable[[], Any]) -> Tuple[threading.Thread, Dict[str, Any]]:
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome['result'] = target()
        except BaseException as exc:
            outcome['error'] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_parts_finishing_out_of_order_make_the_exact_object_and_checksum(tmp_path, s3, bucket):
    path, data = payload(tmp_path, 12 * PART + 1000)
    store = make_store(s3, bucket, concurrency=4)
    parts = Parts(store.client)
    parts.hold(1, [('answered', 2), ('answered', 3)])   # part 1 lands after parts 2 and 3
    sent = store.upload(str(path), 'a.bin')
    assert sent == {'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data)}
    assert not parts.waits_timed_out
    assert parts.answered.index(1) > parts.answered.index(3), parts.answered
    assert sorted(parts.answered) == list(range(1, 14))
    assert 1 < parts.max_in_flight <= 4
    client = s3.client()
    assert client.get_object(Bucket=bucket, Key='f/a.bin')['Body'].read() == data
    assert client.list_multipart_uploads(Bucket=bucket).get('Uploads', []) == []
    assert store.sha256('a.bin') == sent['sha256']


def test_at_most_concurrency_parts_are_read_ahead(tmp_path, s3, bucket):
    path, data = payload(tmp_path, 16 * PART)
    store = make_store(s3, bucket, concurrency=3)
    parts = Parts(store.client)
    release = ('answered', 99)   # set by the test
    for number in (1, 2, 3):
        parts.hold(number, [release])
    thread, outcome = in_thread(lambda: store.upload(str(path), 'a.bin'))
    try:
        for number in (1, 2, 3):
            assert parts.event('started', number).wait(WAIT)
        # Every sending thread is stuck: the reader may hold only the parts they carry. (boto3's transfer manager
        # read 10 parts ahead of its threads whatever max_concurrency was: 10 x part_size_mb of memory.)
        deadline = time.monotonic() + 0.5
        farthest = 0
        while time.monotonic() < deadline and farthest <= 3 * PART:
            farthest = max(farthest, read_position(path))
    finally:
        parts.event(*release).set()
        thread.join(WAIT)
    assert farthest <= 3 * PART, 'read %d parts ahead with 3 sending threads' % (farthest / PART)
    assert outcome == {'result': {'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data)}}
    assert parts.max_in_flight <= 3


def test_more_parts_in_flight_than_urllib3s_default_pool_keep_their_connections(tmp_path, s3, bucket, caplog):
    """concurrency above 10 (urllib3's default pool): every part in flight has a pooled connection to go back to;
    a full pool drops the connection after each part (a new TCP and TLS handshake per part, a warning each)."""
    import logging
    caplog.set_level(logging.WARNING, logger='urllib3')
    path, data = payload(tmp_path, 16 * PART)
    store = make_store(s3, bucket, concurrency=16)
    parts = Parts(store.client)
    for number in range(1, 17):
        parts.hold(number, [('started', other) for other in range(1, 17)])   # all 16 in flight at once
    sent = store.upload(str(path), 'a.bin')
    assert sent == {'sha256': hashlib.sha256(data).hexdigest(), 'size': len(data)}
    assert not parts.waits_timed_out and parts.max_in_flight == 16
    full = [r.getMessage() for r in caplog.records if 'pool is full' in r.getMessage()]
    assert full == [], full[:1]


def test_a_refused_part_with_parts_in_flight_is_named_and_leaves_no_multipart_upload(tmp_path, s3, bucket):
    path, data = payload(tmp_path, 24 * PART + 1000)
    store = make_store(s3, bucket, concurrency=4)
    parts = Parts(store.client)
    parts.refuse(3)
    parts.hold(3, [('started', 2), ('started', 4)])   # parts 2 and 4 are in flight when part 3 fails
    for number in range(4, 26):
        parts.hold(number, [('answered', 3)])         # and the parts after it land after the failure
    with pytest.raises(OpsReadyError) as info:
        store.upload(str(path), 'a.bin')
    message = str(info.value)
    assert 'part 3 of 25, bytes %d-%d' % (2 * PART, 3 * PART - 1) in message, message
    assert 'InvalidArgument' in message and 'aborted' in message, message
    assert not parts.waits_timed_out
    assert 4 in parts.answered and parts.answered.index(4) > parts.answered.index(3)
    # sending stops at the failure: only parts the threads had taken before it was known (a few) start after it
    assert len(parts.started) - parts.started_before_answer[3] <= 2 * 4, parts.started
    assert len(parts.started) <= 6 + 2 * 4, parts.started
    assert leftovers(s3, bucket) == []


def test_a_read_failing_with_parts_in_flight_leaves_no_multipart_upload(tmp_path, s3, bucket):
    path, data = payload(tmp_path, 12 * PART)
    store = make_store(s3, bucket, concurrency=4)
    parts = Parts(store.client)
    with pytest.raises(OSError, match='simulated connection loss'):
        store.upload(str(path), 'a.bin', fail_after=6 * PART + 10)
    assert 1 <= len(parts.answered) <= 6
    assert leftovers(s3, bucket) == []


def test_object_lock_reaches_a_multipart_upload(tmp_path, s3, bucket):
    path, data = payload(tmp_path, 3 * PART + 1)
    store = make_store(s3, bucket, concurrency=2, object_lock_mode='GOVERNANCE', lock_days=1)
    store.check_object_lock()
    created: List[Dict[str, str]] = []
    store.client.meta.events.register('before-send.s3.CreateMultipartUpload', lambda request, **kwargs: created.append(
        headers(request)))
    before = datetime.datetime.now(datetime.timezone.utc)
    sent = store.upload(str(path), 'a.bin')
    assert sent['sha256'] == hashlib.sha256(data).hexdigest()
    # moto 5.2 keeps no lock from a multipart upload (S3 does, from these headers): check what was asked for
    assert len(created) == 1
    assert created[0]['x-amz-object-lock-mode'] == 'GOVERNANCE'
    until = datetime.datetime.strptime(created[0]['x-amz-object-lock-retain-until-date'], '%Y-%m-%dT%H:%M:%SZ')
    assert until.replace(tzinfo=datetime.timezone.utc) >= before + datetime.timedelta(days=1)
    assert s3.client().get_object(Bucket=bucket, Key='f/a.bin')['Body'].read() == data
    assert s3.client().list_multipart_uploads(Bucket=bucket).get('Uploads', []) == []


@pytest.mark.parametrize('calculation', ['when_supported', 'when_required'])
def test_every_part_carries_its_checksum(tmp_path, s3, bucket, monkeypatch, calculation):
    # when_required: for S3-compatible stores without flexible checksums (boto3 then sends no checksum at all)
    monkeypatch.setenv('AWS_REQUEST_CHECKSUM_CALCULATION', calculation)
    path, data = payload(tmp_path, 3 * PART + 5)
    store = make_store(s3, bucket, concurrency=2)
    parts = Parts(store.client)
    store.upload(str(path), 'a.bin')
    assert sorted(parts.headers) == [1, 2, 3, 4]
    header = 'x-amz-checksum-crc32' if calculation == 'when_supported' else 'content-md5'
    assert all(header in h for h in parts.headers.values()), parts.headers
    assert s3.client().get_object(Bucket=bucket, Key='f/a.bin')['Body'].read() == data
