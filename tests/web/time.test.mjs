// The Tokens page's times (service/web/time.js): relative times, what a row says
// about expiry and last use, and the create dialog's expiry choice.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { expiryChoice, expiryText, lastUsedText, localInputValue, relativeTime } from '../../service/web/time.js';

const NOW = Date.parse('2026-12-02T06:00:00.000Z');
const at = (seconds) => new Date(NOW + seconds * 1000).toISOString();
const MIN = 60;
const HOUR = 3600;
const DAY = 86400;

test('relative times: seconds, minutes, hours below two days, days below 100, then months and years', () => {
  const r = (s) => relativeTime(at(s), NOW, 'en');
  assert.equal(r(-30), '30 seconds ago');
  assert.equal(r(3 * MIN), 'in 3 minutes');
  assert.equal(r(-2 * HOUR), '2 hours ago');
  assert.equal(r(2 * HOUR - 1), 'in 2 hours');
  assert.equal(r(36 * HOUR), 'in 36 hours');
  assert.equal(r(30 * DAY - 5), 'in 30 days'); // the 30-day preset, a moment later
  assert.equal(r(29 * DAY + 3 * HOUR), 'in 29 days');
  assert.equal(r(90 * DAY), 'in 90 days');
  assert.equal(r(-200 * DAY), '7 months ago');
  assert.equal(r(365 * DAY), 'in 12 months');
  assert.equal(r(3 * 365 * DAY), 'in 3 years');
});

test('expiry: nothing for a token that never expires, "Expires in" before, "Expired … ago" after', () => {
  assert.equal(expiryText({ status: 'active' }, NOW, 'en'), null);
  assert.deepEqual(expiryText({ status: 'active', expires_at: at(29 * DAY) }, NOW, 'en'),
                   { text: 'Expires', relative: 'in 29 days', at: at(29 * DAY) });
  assert.deepEqual(expiryText({ status: 'expired', expires_at: at(-2 * HOUR) }, NOW, 'en'),
                   { text: 'Expired', relative: '2 hours ago', at: at(-2 * HOUR) });
  // Passed but listed before it did: the time decides.
  assert.equal(expiryText({ status: 'active', expires_at: at(-5) }, NOW, 'en').text, 'Expired');
  // An inactive token keeps its expiry.
  assert.equal(expiryText({ status: 'inactive', expires_at: at(DAY * 3) }, NOW, 'en').relative, 'in 3 days');
});

test('last used: "Never used" without last_used_at, else how long ago (a minute at best)', () => {
  assert.deepEqual(lastUsedText({}, NOW, 'en'), { text: 'Never used' });
  assert.deepEqual(lastUsedText({ last_used_at: at(-3 * MIN), last_used_count: 7 }, NOW, 'en'),
                   { text: 'Last used', relative: '3 minutes ago', at: at(-3 * MIN), count: 7 });
  assert.equal(lastUsedText({ last_used_at: at(-20) }, NOW, 'en').relative, 'less than a minute ago');
  assert.equal(lastUsedText({ last_used_at: at(-2 * DAY) }, NOW, 'en').relative, '2 days ago');
});

test('the create dialog\'s expiry: presets from now, a custom time only in the future', () => {
  assert.deepEqual(expiryChoice('', '', NOW), { expiresAt: null, problem: null });
  assert.deepEqual(expiryChoice('30d', '', NOW), { expiresAt: at(30 * DAY), problem: null });
  assert.deepEqual(expiryChoice('365d', '', NOW), { expiresAt: at(365 * DAY), problem: null });
  assert.match(expiryChoice('custom', '', NOW).problem, /Choose the date/);
  assert.match(expiryChoice('custom', 'not a date', NOW).problem, /valid date/);
  const past = localInputValue(new Date(NOW - HOUR * 1000));
  assert.match(expiryChoice('custom', past, NOW).problem, /in the future/);
  const future = localInputValue(new Date(NOW + 2 * DAY * 1000));
  const c = expiryChoice('custom', future, NOW);
  assert.equal(c.problem, null);
  assert.equal(Date.parse(c.expiresAt), NOW + 2 * DAY * 1000);
  assert.match(expiryChoice('12d', '', NOW).problem, /Choose when/);
});

test('datetime-local values are local time, to the minute', () => {
  const d = new Date(2026, 0, 5, 7, 9, 30);
  assert.equal(localInputValue(d), '2026-01-05T07:09');
  assert.equal(new Date(localInputValue(d)).getTime(), new Date(2026, 0, 5, 7, 9).getTime());
});
