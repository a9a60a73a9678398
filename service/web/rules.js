// The API's input rules (events/rules.h), as the page checks them before it sends
// a request: one copy in the browser, kept equal to the service's by one table of
// cases that both are tested against (tests/rules_cases.json,
// tests/web/rules.test.mjs). The API checks everything again.

export const MAX_ID_LENGTH = 128;
export const MAX_DESCRIPTION = 200;

const ID_PATTERN = /^[A-Za-z0-9\-_.@+:]{1,128}$/;
const ID_RULE = `1–${MAX_ID_LENGTH} characters of A-Z a-z 0-9 - _ . @ + :`;

/** What is wrong with a user id, or null. */
export function userIdProblem(user) {
  if (!ID_PATTERN.test(user)) return `A user id is ${ID_RULE}.`;
  if (user === '.' || user === '..') return 'A user id cannot be "." or "..".';
  return null;
}

/** What is wrong with a destination id, or null. */
export function destinationIdProblem(id) {
  return ID_PATTERN.test(id) ? null : `A destination id is ${ID_RULE}.`;
}

// Unicode White_Space, which the API trims (JavaScript's trim() differs: it trims
// U+FEFF and keeps U+0085).
const SPACE = '[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const EDGES = new RegExp(`^${SPACE}+|${SPACE}+$`, 'gu');
// C0, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * A description as the API takes it: trimmed, then 1–200 characters (code points)
 * without control characters. Returns {trimmed, length, problem}, problem one of
 * null, 'empty', 'too long', 'control characters'.
 */
export function checkDescription(raw) {
  const trimmed = raw.replace(EDGES, '');
  const length = [...trimmed].length;
  let problem = null;
  if (length === 0) problem = 'empty';
  else if (CONTROL.test(trimmed)) problem = 'control characters';
  else if (length > MAX_DESCRIPTION) problem = 'too long';
  return { trimmed, length, problem };
}
