"""S3 multipart part size: the configured one while the file fits in S3's 10,000 parts, doubled until it does."""

from __future__ import annotations

import pytest

from ansible_collections.opsready.operations.plugins.module_utils.offsite.stores import (S3_MAX_PART, S3_MAX_PARTS,
                                                                                         s3_part_size)

MIB = 1024 * 1024


@pytest.mark.parametrize('size', [0, 1, 64 * MIB, 64 * MIB * S3_MAX_PARTS, 64 * MIB * S3_MAX_PARTS + 1, 10 ** 12,
                                  5 * 1024 ** 4])   # S3 objects are at most 5 TiB
def test_parts_fit_in_ten_thousand(size):
    part = s3_part_size(64 * MIB, size)
    assert part >= 64 * MIB and part <= S3_MAX_PART
    assert -(-size // part) <= S3_MAX_PARTS
    # no bigger than needed
    assert part == 64 * MIB or -(-size // (part // 2)) > S3_MAX_PARTS


def test_past_the_s3_limits_the_part_size_stops_at_5_gib():
    assert s3_part_size(64 * MIB, 10 ** 15) == 64 * MIB * 64   # 4 GiB: one more doubling would pass 5 GiB
