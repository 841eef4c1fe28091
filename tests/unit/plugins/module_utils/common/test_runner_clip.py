"""A tool's error output goes into messages and results with every line cut to STDERR_LINE: the mariadb client
echoes a whole failed statement (megabytes of hex for one big row) on one line."""

from __future__ import annotations

from ansible_collections.opsready.operations.plugins.module_utils.common.runner import (
    STDERR_LINE, ToolRunner, clip_lines)


def test_long_lines_cut_short_ones_kept():
    text = 'INSERT INTO `b` VALUES\n(1,0x' + '78' * 5_000_000 + ')\n--------------\n\nERROR 2006 (HY000) at line 48: ' \
           'Server has gone away\n'
    clipped = clip_lines(text)
    lines = clipped.split('\n')
    assert len(lines) == len(text.split('\n')) and max(len(line) for line in lines) < STDERR_LINE + 40
    assert '[10000006 characters]' in lines[1] and lines[-2].endswith('Server has gone away')
    assert clip_lines('short\nlines') == 'short\nlines'


def test_failure_message_and_stderr_are_clipped():
    error = ToolRunner().failure(['mariadb'], 1, 'x' * 3_000_000 + '\nERROR 1153 (08S01): Got a packet bigger\n')
    assert len(error.message) < 2000 and 'ERROR 1153' in error.message
    assert len(error.details['stderr']) < 2000
