// The web page's copy of the API's input rules (service/web/rules.js) against the
// table of cases the C++ rules are tested against too (tests/rules_cases.json,
// tests/unit/rules_test.cpp): where the page repeats a rule, both agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { MAX_DESCRIPTION, checkDescription, destinationIdProblem, userIdProblem } from '../../service/web/rules.js';

const cases = JSON.parse(readFileSync(new URL('../rules_cases.json', import.meta.url), 'utf8'));

test('user ids', () => {
  for (const id of cases.user_id.valid) assert.equal(userIdProblem(id), null, JSON.stringify(id));
  for (const id of cases.user_id.invalid) assert.notEqual(userIdProblem(id), null, JSON.stringify(id));
});

test('destination ids', () => {
  for (const id of cases.destination_id.valid) assert.equal(destinationIdProblem(id), null, id);
  for (const id of cases.destination_id.invalid) assert.notEqual(destinationIdProblem(id), null, id);
});

test('descriptions: trimmed as the API trims, then checked', () => {
  for (const [raw, trimmed] of cases.description.valid) {
    const d = checkDescription(raw);
    assert.equal(d.problem, null, JSON.stringify(raw));
    assert.equal(d.trimmed, trimmed, JSON.stringify(raw));
  }
  for (const raw of cases.description.invalid)
    assert.notEqual(checkDescription(raw).problem, null, JSON.stringify(raw));
  assert.equal(MAX_DESCRIPTION, cases.description.max_chars);
  assert.equal(checkDescription('a'.repeat(MAX_DESCRIPTION)).problem, null);
  assert.equal(checkDescription('a'.repeat(MAX_DESCRIPTION + 1)).problem, 'too long');
  assert.equal(checkDescription('🔑'.repeat(MAX_DESCRIPTION)).problem, null); // code points
});
