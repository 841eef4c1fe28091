"""The AWX job templates, surveys and schedules under awx/: each loads as the JSON the AWX API takes, names a
playbook that exists, and only sets variables the playbook or its roles declare (a typo in a survey variable
would otherwise be silently ignored by the role)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p for p in (REPO / 'awx').iterdir() if p.is_dir())
SURVEY_TYPES = {'text', 'textarea', 'password', 'integer', 'float', 'multiplechoice', 'multiselect'}
RRULE = re.compile(r'^DTSTART;TZID=(?P<tz>[A-Za-z_/+-]+):(?P<start>\d{8}T\d{6}) RRULE:(?P<rule>[A-Z0-9=;,+-]+)$')
RULE_KEYS = {'FREQ', 'INTERVAL', 'BYDAY', 'BYMONTHDAY', 'BYMONTH', 'BYHOUR', 'BYMINUTE', 'COUNT', 'UNTIL', 'BYSETPOS'}


def imported_roles(tasks: list) -> list:
    """Roles a task list imports or includes, inside blocks too (the playbooks wrap their role in a block)."""
    found = []
    for task in tasks:
        for key in ('ansible.builtin.import_role', 'ansible.builtin.include_role', 'import_role', 'include_role'):
            if key in task:
                found.append(task[key]['name'])
        for section in ('block', 'rescue', 'always'):
            found.extend(imported_roles(task.get(section) or []))
    return found


def declared_variables(playbook: Path) -> set:
    """Variables the playbook's roles declare (defaults, argument specs) plus those the playbook itself reads."""
    text = playbook.read_text()
    names = set(re.findall(r'\b([a-z][a-z0-9_]*)\s*\|\s*default', text))
    for play in yaml.safe_load(text):
        for role in list(play.get('roles') or []) + imported_roles(play.get('tasks') or []):
            role_name = (role['role'] if isinstance(role, dict) else role).split('.')[-1]
            role_dir = REPO / 'roles' / role_name
            assert role_dir.is_dir(), 'playbook %s uses missing role %s' % (playbook, role_name)
            defaults = role_dir / 'defaults' / 'main.yml'
            if defaults.exists():
                names |= set((yaml.safe_load(defaults.read_text()) or {}).keys())
            specs = role_dir / 'meta' / 'argument_specs.yml'
            if specs.exists():
                for spec in yaml.safe_load(specs.read_text())['argument_specs'].values():
                    names |= set((spec.get('options') or {}).keys())
    return names


@pytest.mark.parametrize('template', TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_template_names_existing_playbook_and_declared_variables(template):
    body = json.loads((template / 'job_template.json').read_text())
    for key in ('name', 'job_type', 'inventory', 'project', 'playbook', 'extra_vars', 'survey_enabled'):
        assert key in body, '%s lacks %s' % (template.name, key)
    assert body['job_type'] in ('run', 'check')
    playbook = REPO / body['playbook']
    assert playbook.is_file(), '%s names %s, which does not exist' % (template.name, body['playbook'])
    declared = declared_variables(playbook)
    extra = json.loads(body['extra_vars']) if body['extra_vars'] else {}  # AWX takes a JSON (or YAML) string
    assert set(extra) <= declared, 'undeclared extra vars: %s' % (set(extra) - declared)

    survey = json.loads((template / 'survey_spec.json').read_text())
    assert set(survey) == {'name', 'description', 'spec'} and isinstance(survey['spec'], list)
    assert body['survey_enabled'] is bool(survey['spec'])
    seen = set()
    for question in survey['spec']:
        for key in ('question_name', 'required', 'type', 'variable', 'default'):
            assert key in question, question
        assert question['type'] in SURVEY_TYPES, question
        assert question['variable'] in declared, '%s: survey variable %s is not declared by %s or its roles' % (
            template.name, question['variable'], body['playbook'])
        assert question['variable'] not in seen
        seen.add(question['variable'])
        if question['type'] in ('multiplechoice', 'multiselect'):
            choices = question['choices']
            choices = choices.split('\n') if isinstance(choices, str) else choices
            assert question['default'] in choices, question
        if question['type'] == 'integer':
            assert isinstance(question['default'], int)
            assert question.get('min', question['default']) <= question['default'] <= question.get('max', 10 ** 12)

    for schedule in json.loads((template / 'schedules.json').read_text()):
        assert {'name', 'rrule', 'enabled', 'extra_data'} <= set(schedule)
        match = RRULE.match(schedule['rrule'])
        assert match, schedule['rrule']
        parts = dict(p.split('=', 1) for p in match.group('rule').split(';'))
        assert set(parts) <= RULE_KEYS and parts['FREQ'] in ('MINUTELY', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'), parts
        assert set(schedule['extra_data']) <= declared, 'schedule %s sets undeclared %s' % (
            schedule['name'], set(schedule['extra_data']) - declared)


def test_the_four_runbooks_have_templates():
    playbooks = {json.loads((t / 'job_template.json').read_text())['playbook'] for t in TEMPLATES}
    assert playbooks >= {'playbooks/backup.yml', 'playbooks/recovery.yml', 'playbooks/patching.yml',
                         'playbooks/dr_drill.yml'}


def test_a_misspelt_survey_variable_is_caught(tmp_path):
    """The check above can fail: a variable no role declares is not in the declared set."""
    declared = declared_variables(REPO / 'playbooks' / 'dr_drill.yml')
    assert 'dr_drill_rto_seconds' in declared and 'dr_drill_rto_second' not in declared
