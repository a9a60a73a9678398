// End-to-end test of the Tokens page: Debian's chromium, driven by playwright-core,
// against a real tokenledgerd started by run.sh. Each step saves a screenshot into
// the artifacts folder; a step runs only if every step before it passed.
//
// Environment (set by run.sh): TL_BASE_URL, TL_OPERATOR_SECRET, TL_ARTIFACTS,
// TL_DAEMON_LOG (the daemon's output, checked for leaked secrets at the end),
// TL_CHROMIUM (default /usr/bin/chromium). run.sh starts the daemon with
// --last-used-flush-ms 200, so that a verify shows as the token's last use at once.
//
//   node --test tests/e2e/tokens_page.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

// axe-core, the accessibility rules engine, run inside the page at each main state.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const BASE = process.env.TL_BASE_URL;
const OPERATOR_SECRET = process.env.TL_OPERATOR_SECRET;
const ARTIFACTS = process.env.TL_ARTIFACTS ?? 'artifacts';
const DAEMON_LOG = process.env.TL_DAEMON_LOG;
const CHROMIUM = process.env.TL_CHROMIUM ?? '/usr/bin/chromium';
const USER = 'alice.e2e@example.com';
// The user with many tokens: paging and Deactivate all….
const MANY_USER = 'bob.e2e@example.com';
const MANY = 250;
const PAGE_SIZE = 50; // service/web/app.js PAGE_SIZE

assert.ok(BASE, 'TL_BASE_URL is not set (run tests/e2e/run.sh)');
assert.ok(OPERATOR_SECRET, 'TL_OPERATOR_SECRET is not set (run tests/e2e/run.sh)');
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
let context;
let page;
let failed = false; // a failed step skips the rest: they build on each other
let shot = 0;

const secretsSeen = []; // every token secret the run saw, to look for leaks
const consoleProblems = []; // console errors, page errors, failed page assets
const consoleTexts = []; // every console message, to look for leaked secrets
let allowedApiStatuses = new Set(); // API error statuses that the current step provokes on purpose
const expectedApiErrors = [];

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** A test step: skipped after a failure; on failure saves a screenshot of the page. */
function step(name, fn, { timeout = 60_000 } = {}) {
  test(name, { timeout }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (error) {
      failed = true;
      if (page) await screenshot(`FAILED-${name}`).catch(() => {});
      throw error;
    }
  });
}

async function screenshot(name, options = {}) {
  shot += 1;
  const file = join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide', ...options });
  return file;
}

/**
 * Runs axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is now
 * (an open modal dialog included) and fails on any violation. The engine is
 * evaluated through the DevTools protocol, which the page's CSP does not govern,
 * so the page keeps its real CSP.
 */
async function checkAccessibility(where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility violations ${where}`);
}

/** Runs fn while the API may answer the given error statuses (Chromium logs each as a console error). */
async function expectingApiErrors(statuses, fn) {
  allowedApiStatuses = new Set(statuses);
  try {
    return await fn();
  } finally {
    allowedApiStatuses = new Set();
  }
}

/** Polls fn until it returns a truthy value; fails with `what` after `timeout` ms. */
async function until(what, fn, timeout = 10_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function apiCall(method, path, body, secret = OPERATOR_SECRET) {
  const headers = { Authorization: `Bearer ${secret}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

/** POST /v1/verify with HTTP Basic key:token, as a gateway would. */
async function verify(key, token) {
  const response = await fetch(`${BASE}/v1/verify`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`${key}:${token}`).toString('base64')}` },
  });
  return { status: response.status, body: await response.json() };
}

/** Creates tokens through the API, `concurrency` requests at a time: [{key, token}] in the order of `bodies`. */
async function createMany(user, bodies, concurrency = 25) {
  const results = new Array(bodies.length);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < bodies.length) {
      const i = next++;
      const r = await apiCall('POST', `/v1/users/${user}/tokens`, bodies[i]);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      secretsSeen.push(r.body.token);
      results[i] = { key: r.body.key, token: r.body.token };
    }
  }));
  return results;
}

/** Every token of one kind as the API pages them (following next_cursor), in its order. */
async function listAll(user, kind) {
  const tokens = [];
  let cursor = null;
  for (let requests = 0; requests < 1000; requests++) {
    const q = new URLSearchParams({ kind, limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const r = await apiCall('GET', `/v1/users/${user}/tokens?${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    tokens.push(...r.body.tokens.filter((t) => t.kind === kind));
    cursor = r.body.next_cursor ?? null;
    if (!cursor) return tokens;
  }
  throw new Error('next_cursor never became null');
}

/** Verifies many tokens, 25 at a time: [{status, body}]. */
async function verifyMany(tokens) {
  const results = [];
  for (let i = 0; i < tokens.length; i += 25) {
    results.push(...await Promise.all(tokens.slice(i, i + 25).map((t) => verify(t.key, t.token))));
  }
  return results;
}

/** A datetime-local value for a time (the browser runs in UTC). */
const localValue = (ms) => new Date(ms).toISOString().slice(0, 16);

const row = (key) => page.locator(`li.token-row[data-key="${key}"]`);
const rowKeys = (list) => page.locator(`${list} li.token-row`).evaluateAll((rows) => rows.map((r) => r.dataset.key));

/** Signs out and in again as `user`, forgetting the list requests made so far. */
async function switchUser(user) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#signin-view').waitFor({ state: 'visible' });
  listRequests.length = 0;
  await page.getByLabel('Operator secret').fill(OPERATOR_SECRET);
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#tokens-view').waitFor({ state: 'visible' });
}

/** Clicks Refresh and waits until both sections are loaded again. */
async function refresh() {
  await page.getByRole('button', { name: 'Refresh', exact: true }).click();
  await until('the lists to be reloaded', async () =>
    (await page.locator('#refresh-button').getAttribute('aria-disabled')) === null &&
    (await page.locator('.token-list[aria-busy]').count()) === 0);
}
const switchOf = (key) => row(key).getByRole('switch');

async function activeElementId() {
  return page.evaluate(() => document.activeElement?.id || document.activeElement?.dataset?.focusId || document.activeElement?.tagName);
}

async function focusIsInside(selector) {
  return page.evaluate((s) => document.querySelector(s).contains(document.activeElement), selector);
}

/** Everything of the page that could hold a secret: its HTML, its text, form values, storage, URL. */
async function pageState() {
  return page.evaluate(() => {
    const storage = (s) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]));
    return {
      html: document.documentElement.outerHTML,
      text: document.body.innerText,
      values: [...document.querySelectorAll('input, textarea')].map((e) => e.value).join('\n'),
      local: storage(localStorage),
      session: storage(sessionStorage),
      url: location.href,
    };
  });
}

function assertNoSecret(state, secret, where) {
  assert.ok(!state.html.includes(secret), `the secret is in the page HTML ${where}`);
  assert.ok(!state.text.includes(secret), `the secret is in the page text ${where}`);
  assert.ok(!state.values.includes(secret), `the secret is in a form field ${where}`);
  assert.ok(!JSON.stringify(state.local).includes(secret), `the secret is in localStorage ${where}`);
  assert.ok(!JSON.stringify(state.session).includes(secret), `the secret is in sessionStorage ${where}`);
  assert.ok(!state.url.includes(secret), `the secret is in the URL ${where}`);
  assert.ok(!/tls_[A-Za-z0-9]{20,}/.test(state.html), `some token secret is in the page HTML ${where}`);
}

/** Reads the secret dialog: {key, token}; checks its warning. */
async function readSecretDialog(title) {
  const dialog = page.locator('#secret-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#secret-title').textContent(), title);
  const warning = await page.locator('#secret-warning').textContent();
  assert.match(warning, /only time it is shown/);
  const key = (await page.locator('#secret-key').textContent()).trim();
  const token = (await page.locator('#secret-token').textContent()).trim();
  assert.match(key, /^tlk_[A-Za-z0-9]{24}$/);
  assert.match(token, /^tls_[A-Za-z0-9]{49}$/);
  secretsSeen.push(token);
  return { key, token };
}

/**
 * Watches, in the page, what happens to the secret dialog: its `open` attribute and
 * the text of #secret-token and #secret-key. A MutationObserver gets its records in
 * the order of the mutations, so they tell, whatever the timing, whether the secret
 * left the DOM before the dialog closed. window.secretWatch resolves to the list of
 * what happened, in order, at the dialog's `close` event.
 */
async function watchSecretDialog({ key, token }) {
  await page.evaluate(({ key, token }) => {
    const dialog = document.getElementById('secret-dialog');
    const events = [];
    const holds = (node, what) => (node.textContent ?? '').includes(what);
    const note = (records) => {
      for (const r of records) {
        if (r.type === 'attributes') {
          events.push(r.oldValue === null ? 'dialog opened' : 'dialog closed');
        } else if (r.type === 'characterData') {
          for (const [name, value] of [['token', token], ['key', key]]) {
            if (r.oldValue?.includes(value)) events.push(`${name} removed`);
          }
        } else {
          for (const [name, value] of [['token', token], ['key', key]]) {
            if ([...r.removedNodes].some((n) => holds(n, value))) events.push(`${name} removed`);
            if ([...r.addedNodes].some((n) => holds(n, value))) events.push(`${name} added`);
          }
        }
      }
    };
    const observer = new MutationObserver(note);
    observer.observe(dialog, { attributes: true, attributeFilter: ['open'], attributeOldValue: true });
    for (const id of ['secret-token', 'secret-key']) {
      observer.observe(document.getElementById(id),
                       { childList: true, characterData: true, characterDataOldValue: true, subtree: true });
    }
    // The `close` event comes last, as a task: by then every mutation of the closing is made.
    window.secretWatch = new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        note(observer.takeRecords());
        observer.disconnect();
        resolve(events);
      }, { once: true });
    });
  }, { key, token });
}

/**
 * Closes the secret dialog one of the three ways ('OK', 'Escape', '×') and checks
 * that the secret was gone from the DOM before the dialog closed (not only after),
 * that it is gone now, and where focus went back to.
 */
async function closeSecretDialog(secret, how, focusAfter) {
  await watchSecretDialog(secret);
  const dialog = page.getByRole('dialog', { name: await page.locator('#secret-title').textContent() });
  if (how === 'OK') await dialog.getByRole('button', { name: 'OK', exact: true }).click();
  else if (how === 'Escape') await page.keyboard.press('Escape');
  else if (how === '×') await dialog.getByRole('button', { name: 'Close', exact: true }).click();
  else throw new Error(`no way to close the dialog called ${how}`);
  await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
  const events = await page.evaluate(() => Promise.race([
    window.secretWatch, new Promise((resolve) => { setTimeout(() => resolve(null), 5000); })]));
  assert.ok(events, `no close event within 5 s (${how})`);
  const closedAt = events.indexOf('dialog closed');
  assert.ok(closedAt >= 0, `the dialog did not close (${how}): ${events.join(', ')}`);
  for (const what of ['token', 'key']) {
    const removedAt = events.indexOf(`${what} removed`);
    assert.ok(removedAt >= 0, `the ${what} was never removed from the dialog (${how}): ${events.join(', ')}`);
    assert.ok(removedAt < closedAt,
              `the ${what} was still in the dialog when it closed (${how}): ${events.join(', ')}`);
    assert.ok(!events.includes(`${what} added`), `the ${what} was put back into the dialog (${how}): ${events.join(', ')}`);
  }
  assert.equal(await page.locator('#secret-token').textContent(), '', 'the secret is still in the dialog');
  assert.equal(await page.locator('#secret-key').textContent(), '');
  assert.equal(await activeElementId(), focusAfter, `focus did not return to ${focusAfter} (${how})`);
}

// ------------------------------------------------------------------ setup

const state = {}; // what the steps hand on: keys, secrets
const listRequests = []; // the query of every list request the page makes (GET …/tokens)

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // launch() runs the browser with a fresh, temporary user-data-dir of its own.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', timezoneId: 'UTC' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (message) => {
    consoleTexts.push(message.text());
    if (message.type() !== 'error') return;
    const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(message.text());
    const url = message.location()?.url ?? '';
    if (m && url.startsWith(`${BASE}/v1/`) && allowedApiStatuses.has(Number(m[1]))) {
      expectedApiErrors.push(`${m[1]} ${url}`);
      return;
    }
    consoleProblems.push(`console error: ${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => consoleProblems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (!request.url().includes('/v1/')) consoleProblems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && !response.url().includes('/v1/')) consoleProblems.push(`asset ${response.url()} answered ${response.status()}`);
  });

  // A destination token, created by "the platform" through the API.
  const created = await apiCall('POST', `/v1/users/${USER}/tokens`,
                                { description: 'Push conversions to the CRM webhook', kind: 'destination', destination_id: 'crm-webhook-1' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  secretsSeen.push(created.body.token);
  state.destinationKey = created.body.key;

  page.on('request', (r) => {
    const url = new URL(r.url());
    if (r.method() === 'GET' && /^\/v1\/users\/[^/]+\/tokens$/.test(url.pathname)) listRequests.push(url.searchParams);
  });
});

after(async () => {
  await browser?.close();
});

// ------------------------------------------------------------------ steps

step('the page is served with its security headers', async () => {
  const response = await fetch(`${BASE}/`);
  assert.equal(response.status, 200);
  const csp = response.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  for (const asset of ['/app.js', '/api.js', '/dom.js', '/app.css', '/favicon.svg']) {
    assert.equal((await fetch(`${BASE}${asset}`)).status, 200, asset);
  }
});

step('sign-in asks for the operator secret and shows the API refusal of a wrong one', async () => {
  await page.goto(`${BASE}/`);
  await page.locator('#signin-view').waitFor({ state: 'visible' });
  assert.equal(await activeElementId(), 'signin-secret');
  await checkAccessibility('on the sign-in page');
  await screenshot('sign-in');

  const refusal = await apiCall('GET', `/v1/users/${USER}/tokens`, undefined, 'not-the-operator-secret');
  assert.equal(refusal.status, 401);
  await page.getByLabel('Operator secret').fill('not-the-operator-secret');
  await page.getByLabel('User id').fill(USER);
  await expectingApiErrors([401], async () => {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await until('the sign-in error', async () => (await page.locator('#signin-alert').textContent()).includes(refusal.body.error.message));
  });
  assert.equal(await page.locator('#signin-alert').getAttribute('role'), 'alert');
  assert.equal(await page.locator('#tokens-view').isVisible(), false);
  await screenshot('sign-in-wrong-secret');
});

step('signs in and shows the two sections', async () => {
  await page.getByLabel('Operator secret').fill(OPERATOR_SECRET);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#tokens-view').waitFor({ state: 'visible' });
  assert.equal(await page.getByRole('heading', { level: 1 }).filter({ visible: true }).textContent(), 'Tokens');
  assert.equal(await page.locator('#session-user').textContent(), USER);
  await page.getByRole('heading', { name: 'Destination tokens' }).waitFor();
  await page.getByRole('heading', { name: 'Your tokens' }).waitFor();
  await page.getByRole('button', { name: 'CREATE +' }).waitFor();
  // The destination token is in its section, with its destination id.
  const destination = page.locator('#destination-list').locator(`li.token-row[data-key="${state.destinationKey}"]`);
  await destination.waitFor();
  assert.match(await destination.textContent(), /crm-webhook-1/);
  assert.match(await destination.textContent(), /Destination/);
  assert.match(await page.locator('#user-list').textContent(), /No tokens yet/);
  // The operator secret is in sessionStorage only.
  const s = await pageState();
  assert.ok(JSON.stringify(s.session).includes(OPERATOR_SECRET));
  assert.deepEqual(s.local, {});
  assert.ok(!s.url.includes(OPERATOR_SECRET));
  await checkAccessibility('on the Tokens page');
  await screenshot('tokens-signed-in');
});

step('CREATE + opens a dialog that shows the API message for invalid descriptions', async () => {
  await page.getByRole('button', { name: 'CREATE +' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a token' });
  await dialog.waitFor();
  assert.equal(await activeElementId(), 'create-description');
  // Focus stays in the dialog.
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    assert.ok(await focusIsInside('#create-dialog'), 'Tab left the dialog');
  }
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Shift+Tab');
    assert.ok(await focusIsInside('#create-dialog'), 'Shift+Tab left the dialog');
  }

  const description = dialog.getByLabel('Description');
  for (const [name, text] of [['empty', ''], ['blank', '   '], ['201-characters', 'x'.repeat(201)]]) {
    const expected = await apiCall('POST', `/v1/users/${USER}/tokens`, { description: text });
    assert.equal(expected.status, 400);
    const message = expected.body.error.message;
    await description.fill(text);
    await expectingApiErrors([400], async () => {
      await dialog.getByRole('button', { name: 'OK' }).click();
      await until(`the API message for a ${name} description`,
                  async () => (await page.locator('#create-error').textContent()) === message);
    });
    assert.equal(await page.locator('#create-error').getAttribute('role'), 'alert');
    assert.equal(await description.getAttribute('aria-invalid'), 'true');
    assert.equal(await activeElementId(), 'create-description');
    if (name !== 'blank') await screenshot(`create-invalid-${name}`);
  }
  await checkAccessibility('in the create dialog with an error');
  assert.equal(await page.locator('#create-count').textContent(), '201 / 200');
  // Nothing was created.
  assert.equal((await apiCall('GET', `/v1/users/${USER}/tokens`)).body.tokens.length, 1);
});

step('creating a token shows its key and secret once, and the secret verifies', async () => {
  const dialog = page.getByRole('dialog', { name: 'Create a token' });
  await dialog.getByLabel('Description').fill('  Receive leads from RD Station  ');
  await dialog.getByRole('button', { name: 'OK' }).click();
  const { key, token } = await readSecretDialog('Token created');
  state.first = { key, token };
  assert.equal(await page.evaluate(() => document.activeElement.dataset.copy), 'secret-token');
  await checkAccessibility('in the secret dialog');
  await screenshot('create-secret-shown-once');

  // The secret works at once, through the HTTP API, as a gateway presents it.
  const v = await verify(key, token);
  assert.equal(v.status, 200, JSON.stringify(v.body));
  assert.equal(v.body.valid, true);
  assert.equal(v.body.owner, USER);
  assert.equal(v.body.kind, 'user');

  // Copy puts it on the clipboard.
  await page.getByRole('button', { name: 'Copy the token', exact: true }).click();
  await until('the copy confirmation', async () => /on the clipboard/.test(await page.locator('#copy-status').textContent()));
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  await screenshot('create-secret-copied', { fullPage: false });
  await page.getByRole('button', { name: 'Copy the token key' }).click();
  await until('the key on the clipboard', async () => (await page.evaluate(() => navigator.clipboard.readText())) === key);

  // Focus stays in this dialog too.
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Tab');
    assert.ok(await focusIsInside('#secret-dialog'), 'Tab left the secret dialog');
  }

  await closeSecretDialog(state.first, 'OK', 'create-button');
  const r = row(key);
  await r.waitFor();
  assert.equal(await r.locator('.token-desc').textContent(), 'Receive leads from RD Station');
  assert.match(await r.textContent(), new RegExp(key));
  assert.equal(await switchOf(key).getAttribute('aria-checked'), 'true');
  assert.equal(await r.locator('.status-label').textContent(), 'Active');
  assertNoSecret(await pageState(), token, 'after the dialog closed');
  await screenshot('create-token-in-list');
});

step('after a reload the secret is nowhere: page, storage, URL', async () => {
  await page.reload();
  await row(state.first.key).waitFor();
  const s = await pageState();
  assertNoSecret(s, state.first.token, 'after a reload');
  assert.deepEqual(s.local, {});
  assert.deepEqual(Object.keys(s.session), ['tokenledger.session']);
  // Signed in still (sessionStorage), without asking again.
  assert.equal(await page.locator('#signin-view').isVisible(), false);
  await screenshot('reloaded');
});

step('switch off: deactivated at once, verify fails; switch on (keyboard): verify passes', async () => {
  const { key, token } = state.first;
  const sw = switchOf(key);
  assert.equal(await sw.getAttribute('aria-checked'), 'true');
  await sw.click();
  await until('the switch to be off and settled', async () =>
    (await switchOf(key).getAttribute('aria-checked')) === 'false' &&
    (await row(key).locator('.status-label').textContent()) === 'Inactive');
  const off = await verify(key, token);
  assert.equal(off.status, 401);
  assert.equal(off.body.reason, 'inactive');
  assert.equal((await apiCall('GET', `/v1/users/${USER}/tokens/${key}`)).body.status, 'inactive');
  assert.equal(await activeElementId(), `toggle:${key}`, 'focus left the switch');
  await screenshot('switch-off');

  await page.keyboard.press('Space');
  await until('the switch to be on and settled', async () =>
    (await switchOf(key).getAttribute('aria-checked')) === 'true' &&
    (await row(key).locator('.status-label').textContent()) === 'Active');
  const on = await verify(key, token);
  assert.equal(on.status, 200);
  await screenshot('switch-on');
});

step('a switch whose call fails goes back and shows the error', async () => {
  const { key, token } = state.first;
  const message = 'the event log is unavailable; try again';
  await page.route('**/deactivate', (route) => route.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'log_unavailable', message } }),
  }), { times: 1 });
  await expectingApiErrors([503], async () => {
    await switchOf(key).click();
    await until('the error', async () => (await page.locator('#page-alert-text').textContent()).includes(message));
  });
  await until('the switch to go back', async () => (await switchOf(key).getAttribute('aria-checked')) === 'true');
  assert.equal(await page.locator('#page-alert-text').getAttribute('role'), 'alert');
  assert.equal(await row(key).locator('.status-label').textContent(), 'Active');
  assert.equal((await verify(key, token)).status, 200);
  await screenshot('switch-failed');
  await page.getByRole('button', { name: 'Dismiss message' }).click();
  assert.equal(await page.locator('#page-alert').isVisible(), false);
});

step('rotate with no grace period: the old token fails at once, the new one verifies', async () => {
  const { key, token } = state.first;
  await row(key).getByRole('button', { name: 'Rotate', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Rotate token' });
  await dialog.waitFor();
  assert.equal(await activeElementId(), 'rotate-grace');
  await dialog.getByLabel('Grace period amount').fill('0');
  await checkAccessibility('in the rotate dialog');
  await screenshot('rotate-confirm');
  await dialog.getByRole('button', { name: 'Rotate', exact: true }).click();
  const next = await readSecretDialog('Token rotated');
  assert.notEqual(next.key, key);
  assert.match(await page.locator('#secret-previous').textContent(), /is deactivated now/);
  await screenshot('rotate-secret-shown-once');

  assert.equal((await verify(key, token)).status, 401);
  assert.equal((await verify(key, token)).body.reason, 'inactive');
  assert.equal((await verify(next.key, next.token)).status, 200);
  await closeSecretDialog(next, 'Escape', `history:${key}`);
  await row(next.key).waitFor();
  const old = row(key);
  await until('the old row to show the rotation', async () =>
    (await old.locator('.status-label').textContent()) === 'Inactive (rotation)');
  assert.equal(await switchOf(key).getAttribute('aria-checked'), 'false');
  assert.equal(await old.getByRole('button', { name: 'Rotate', exact: true }).isDisabled(), true);
  assert.match(await old.locator('.token-lineage').textContent(), new RegExp(`Replaced by ${next.key}`));
  assert.match(await row(next.key).locator('.token-lineage').textContent(), new RegExp(`Replaces ${key}`));
  assertNoSecret(await pageState(), next.token, 'after the rotate dialog closed');
  state.second = next;
  await screenshot('rotated');
});

step('rotate with a grace period shows when the old token stops working', async () => {
  const { key, token } = state.second;
  await row(key).getByRole('button', { name: 'Rotate', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Rotate token' });
  await dialog.waitFor();
  // Beyond the limit: the API's own message.
  const expected = await apiCall('POST', `/v1/users/${USER}/tokens/${key}/rotate`, { grace_seconds: 400 * 86400 });
  assert.equal(expected.status, 400);
  await dialog.getByLabel('Grace period amount').fill('400');
  await dialog.getByLabel('Grace period unit').selectOption({ label: 'days' });
  await expectingApiErrors([400], async () => {
    await dialog.getByRole('button', { name: 'Rotate', exact: true }).click();
    await until('the API message for too long a grace period',
                async () => (await page.locator('#rotate-error').textContent()).startsWith(expected.body.error.message));
  });
  await screenshot('rotate-invalid-grace');

  await dialog.getByLabel('Grace period amount').fill('2');
  await dialog.getByLabel('Grace period unit').selectOption({ label: 'hours' });
  const answer = page.waitForResponse((r) => r.url().endsWith(`/${key}/rotate`) && r.status() === 200);
  await dialog.getByRole('button', { name: 'Rotate', exact: true }).click();
  const body = await (await answer).json();
  const next = await readSecretDialog('Token rotated');
  assert.equal(next.key, body.key);
  const endsAt = body.previous.deactivates_at;
  assert.ok(endsAt, 'the API gave no previous.deactivates_at');
  assert.ok(Math.abs(Date.parse(endsAt) - Date.now() - 7200_000) < 60_000);
  assert.equal(await page.locator('#secret-previous time').getAttribute('datetime'), endsAt);
  assert.match(await page.locator('#secret-previous').textContent(), /keeps working until .* \(in 2 hours\)/);
  await screenshot('rotate-grace-secret');
  // Both work during the grace period.
  assert.equal((await verify(key, token)).status, 200);
  assert.equal((await verify(next.key, next.token)).status, 200);
  await closeSecretDialog(next, '×', `history:${key}`);
  const old = row(key);
  await until('the old row to show the end of its grace period', async () =>
    (await old.locator('time').last().getAttribute('datetime')) === endsAt);
  assert.equal(await old.locator('.status-label').textContent(), 'Active');
  assert.match(await old.locator('.status-detail').textContent(), /^Until /);
  state.third = next;
  await checkAccessibility('on the Tokens page with rotated tokens');
  await screenshot('rotated-with-grace');
});

step('history shows the timeline and the rotation lineage', async () => {
  const { key } = state.first;
  await row(key).getByRole('button', { name: 'History', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'History' });
  await dialog.waitFor();
  const items = dialog.locator('.timeline-item');
  // Switched off, switched on (the refused call left no event), rotated.
  await until('four events', async () => (await items.count()) === 4);
  const titles = await dialog.locator('.timeline-title').allTextContents();
  assert.deepEqual(titles, ['Created', 'Deactivated', 'Activated', 'Deactivated']);
  assert.match(await items.nth(0).textContent(), /Receive leads from RD Station/);
  assert.equal(await items.nth(1).locator('.badge').textContent(), 'reason: manual');
  assert.equal(await items.nth(3).locator('.badge').textContent(), 'reason: rotation');
  for (let i = 0; i < 4; i++) {
    assert.match(await items.nth(i).textContent(), /Actor\s*operator/);
    assert.ok(await items.nth(i).locator('time').count() >= 1);
  }
  assert.match(await dialog.locator('#history-lineage').textContent(), new RegExp(`Replaced by ${state.second.key}`));
  await checkAccessibility('in the history dialog');
  await screenshot('history');

  // Lineage: open the successor's history, then back to this one.
  await dialog.getByRole('button', { name: `History of ${state.second.key}` }).first().click();
  await until('the successor history', async () =>
    (await dialog.locator('#history-subject').textContent()).includes(state.second.key) &&
    (await dialog.locator('#history-lineage').textContent()).includes(`Replaces ${key}`));
  const lineage = await dialog.locator('#history-lineage').textContent();
  assert.match(lineage, new RegExp(`Replaced by ${state.third.key}`));
  const created = dialog.locator('.timeline-item').first();
  assert.match(await created.textContent(), new RegExp(`Replaces\\s*${key}`));
  assert.match(await dialog.locator('.timeline-item.event-deactivated').last().textContent(), /scheduled/);
  await screenshot('history-successor');

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await activeElementId(), `history:${key}`, 'focus did not return to the History button');
});

step('a narrow screen (375 px) stacks the rows and does not scroll sideways', async () => {
  await page.setViewportSize({ width: 375, height: 812 });
  const { key } = state.first;
  await row(key).waitFor();
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `the page is ${width}px wide`);
  // Rows stack: the controls sit below the description, not beside it.
  const info = await row(key).locator('.token-info').boundingBox();
  const actions = await row(key).locator('.token-actions').boundingBox();
  assert.ok(actions.y >= info.y + info.height - 1, 'the row controls are not below the description');
  await checkAccessibility('on a narrow screen');
  await screenshot('narrow');

  // The create dialog fits too.
  await page.getByRole('button', { name: 'CREATE +' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a token' });
  await dialog.waitFor();
  const box = await dialog.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 375, 'the dialog is wider than the screen');
  await screenshot('narrow-create-dialog', { fullPage: false });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await activeElementId(), 'create-button');

  await row(state.second.key).getByRole('button', { name: 'History', exact: true }).click();
  await page.getByRole('dialog', { name: 'History' }).locator('.timeline-item').first().waitFor();
  await screenshot('narrow-history', { fullPage: false });
  await page.keyboard.press('Escape');

  // Rotating a destination token keeps its kind and destination id.
  await row(state.destinationKey).getByRole('button', { name: 'Rotate', exact: true }).click();
  const rotate = page.getByRole('dialog', { name: 'Rotate token' });
  await rotate.waitFor();
  await rotate.getByLabel('Grace period amount').fill('0');
  await rotate.getByRole('button', { name: 'Rotate', exact: true }).click();
  const next = await readSecretDialog('Token rotated');
  const secretBox = await page.getByRole('dialog', { name: 'Token rotated' }).boundingBox();
  assert.ok(secretBox.x >= 0 && secretBox.x + secretBox.width <= 375, 'the secret dialog is wider than the screen');
  await screenshot('narrow-secret-dialog', { fullPage: false });
  const v = await verify(next.key, next.token);
  assert.equal(v.status, 200);
  assert.equal(v.body.kind, 'destination');
  assert.equal(v.body.destination_id, 'crm-webhook-1');
  await closeSecretDialog(next, 'OK', `history:${state.destinationKey}`);
  await page.locator('#destination-list').locator(`li.token-row[data-key="${next.key}"]`).waitFor();
  await page.setViewportSize({ width: 1280, height: 800 });
});

step('CREATE + takes an expiry: a past time is refused in the page, the row shows when it expires', async () => {
  await page.getByRole('button', { name: 'CREATE +' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a token' });
  await dialog.waitFor();
  await dialog.getByLabel('Description').fill('Nightly export');
  const expiry = dialog.getByLabel('Expires', { exact: true });
  assert.equal(await expiry.inputValue(), '', 'the expiry is not "Never" by default');
  assert.equal(await page.locator('#create-expiry-custom').isVisible(), false);
  await expiry.selectOption({ label: 'On a date…' });
  const when = dialog.getByLabel('Expiry date and time');
  await when.waitFor();

  // Yesterday: refused in the page, nothing is sent.
  const posts = [];
  const onRequest = (r) => { if (r.method() === 'POST' && r.url().includes('/v1/')) posts.push(r.url()); };
  page.on('request', onRequest);
  await when.fill(localValue(Date.now() - 86400_000));
  await dialog.getByRole('button', { name: 'OK' }).click();
  await until('the expiry error', async () => /in the future/.test(await page.locator('#create-expiry-error').textContent()));
  page.off('request', onRequest);
  assert.deepEqual(posts, [], 'the page sent a create with a past expiry');
  assert.equal(await page.locator('#create-expiry-error').getAttribute('role'), 'alert');
  assert.equal(await when.getAttribute('aria-invalid'), 'true');
  assert.equal(await activeElementId(), 'create-expiry-at');
  await checkAccessibility('in the create dialog with an expiry error');
  await screenshot('create-expiry-in-the-past');
  // The API refuses it too, with its own code (the page would show its message).
  const refused = await apiCall('POST', `/v1/users/${USER}/tokens`,
                                { description: 'Already expired', expires_at: Math.floor(Date.now() / 1000) - 60 });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, 'invalid_expires_at');

  // In 30 days.
  await expiry.selectOption({ label: 'In 30 days' });
  assert.equal(await page.locator('#create-expiry-custom').isVisible(), false);
  assert.equal(await page.locator('#create-expiry-error').isVisible(), false);
  const answer = page.waitForResponse((r) => r.url().endsWith('/tokens') && r.request().method() === 'POST');
  await dialog.getByRole('button', { name: 'OK' }).click();
  const response = await answer;
  assert.equal(response.status(), 201);
  const sent = JSON.parse(response.request().postData());
  assert.ok(Math.abs(Date.parse(sent.expires_at) - Date.now() - 30 * 86400_000) < 60_000, `expires_at ${sent.expires_at}`);
  const created = await readSecretDialog('Token created');
  await closeSecretDialog(created, 'OK', 'create-button');
  const r = row(created.key);
  await r.waitFor();
  const stored = (await apiCall('GET', `/v1/users/${USER}/tokens/${created.key}`)).body;
  assert.equal(Date.parse(stored.expires_at), Date.parse(sent.expires_at));
  assert.equal(await r.locator('.token-expiry').textContent(), 'Expires in 30 days');
  assert.equal(Date.parse(await r.locator('.token-expiry time').getAttribute('datetime')), Date.parse(sent.expires_at));
  assert.equal(await r.locator('.status-label').textContent(), 'Active');
  // Tokens without an expiry say nothing about it.
  assert.equal(await row(state.third.key).locator('.token-expiry').count(), 0);
  state.expiring = created;
  await screenshot('created-with-expiry');
});

step('a token past its expiry shows "Expired … ago" once the list is reloaded', async () => {
  const expiresAt = Date.now() + 3000;
  const created = await apiCall('POST', `/v1/users/${USER}/tokens`,
                                { description: 'Short-lived', expires_at: new Date(expiresAt).toISOString() });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  secretsSeen.push(created.body.token);
  const { key } = created.body;
  await refresh();
  assert.match(await row(key).locator('.token-expiry').textContent(), /^Expires in \d+ seconds?$/);
  await sleep(Math.max(0, expiresAt - Date.now()) + 2500);
  await refresh();
  assert.match(await row(key).locator('.token-expiry').textContent(), /^Expired \d+ seconds ago$/);
  assert.equal(await row(key).locator('.status-label').textContent(), 'Expired');
  assert.equal(await switchOf(key).isDisabled(), true);
  assert.equal(await row(key).getByRole('button', { name: 'Rotate', exact: true }).isDisabled(), true);
  const v = await verify(key, created.body.token);
  assert.equal(v.status, 401);
  assert.equal(v.body.reason, 'expired');
  await screenshot('expired');
});

step('last use: a fresh token says "Never used"; after a verify and a reload, "Last used … ago"', async () => {
  const { key, token } = state.expiring;
  assert.equal(await row(key).locator('.token-last-used').textContent(), 'Never used');
  assert.equal((await apiCall('GET', `/v1/users/${USER}/tokens/${key}`)).body.last_used_at, undefined);
  assert.equal((await verify(key, token)).status, 200);
  // Flushed every 200 ms (run.sh): the API has it soon, and Refresh shows it.
  await until('the API to have the last use', async () =>
    (await apiCall('GET', `/v1/users/${USER}/tokens/${key}`)).body.last_used_at !== undefined, 5000);
  const stored = (await apiCall('GET', `/v1/users/${USER}/tokens/${key}`)).body;
  assert.ok(stored.last_used_count >= 1, JSON.stringify(stored));
  assert.ok(Date.now() - Date.parse(stored.last_used_at) < 120_000);
  await refresh();
  assert.match(await row(key).locator('.token-last-used').textContent(), /^Last used (less than a minute|\d+ minutes?) ago$/);
  assert.equal(await row(key).locator('.token-last-used time').getAttribute('datetime'), stored.last_used_at);
  // A token nobody presented still says so.
  const fresh = await apiCall('POST', `/v1/users/${USER}/tokens`, { description: 'Never presented' });
  secretsSeen.push(fresh.body.token);
  await refresh();
  assert.equal(await row(fresh.body.key).locator('.token-last-used').textContent(), 'Never used');
  await screenshot('last-used');
});

step('a second user with 250 user tokens and 3 destination tokens, created in parallel through the API', async () => {
  const users = await createMany(MANY_USER, Array.from({ length: MANY }, (_, i) => ({ description: `Batch job ${i + 1}` })));
  const destinations = await createMany(MANY_USER, Array.from({ length: 3 }, (_, i) => (
    { description: `Destination ${i + 1}`, kind: 'destination', destination_id: `dest-${i + 1}` })));
  // The API's order (creation order, oldest first) is the one the page must keep.
  const listed = await listAll(MANY_USER, 'user');
  const order = listed.map((t) => t.key);
  assert.equal(order.length, MANY);
  assert.deepEqual(new Set(order), new Set(users.map((t) => t.key)));
  for (let i = 1; i < listed.length; i++) assert.ok(listed[i - 1].created_at <= listed[i].created_at, 'the API is not in creation order');
  state.many = { users, destinations, order };

  await switchUser(MANY_USER);
  await until('the first rows', async () => (await page.locator('#user-list li.token-row').count()) > 0 &&
    (await page.locator('#destination-list li.token-row').count()) === 3 &&
    (await page.locator('.token-list[aria-busy]').count()) === 0, 20_000);
}, { timeout: 120_000 });

step('each section loads a page at a time: Load more appends the next one, in order, without duplicates', async () => {
  const { destinations, order } = state.many;
  const lists = listRequests;
  // The first render: one page of each section, never all of them.
  const more = page.locator('#user-section').getByRole('button', { name: 'Load more' });
  {
    await more.waitFor();
    await until('the first page', async () => (await page.locator('#user-list li.token-row').count()) > 0);
    assert.deepEqual(await rowKeys('#user-list'), order.slice(0, PAGE_SIZE));
    assert.equal(await page.locator('#user-count').textContent(), `${PAGE_SIZE} shown, more available`);
    await until('the destination tokens', async () => (await page.locator('#destination-list li.token-row').count()) === 3);
    assert.deepEqual(new Set(await rowKeys('#destination-list')), new Set(destinations.map((t) => t.key)));
    assert.equal(await page.locator('#destination-count').textContent(), '3 tokens');
    assert.equal(await page.locator('#destination-more').isVisible(), false);
    for (const q of lists) {
      const limit = Number(q.get('limit'));
      assert.ok(limit >= 1 && limit <= PAGE_SIZE + 1, `a list request asked for ${q.get('limit')} tokens`);
    }
    assert.ok(lists.some((q) => q.get('kind') === 'user') && lists.some((q) => q.get('kind') === 'destination'));
    await checkAccessibility('on the Tokens page with more to load');
    await screenshot('paged-first-page', { fullPage: false });

    // Load more, page by page, keeping the API's order.
    let pages = 1;
    while (await more.isVisible()) {
      const requestsBefore = lists.length;
      await more.click();
      pages += 1;
      const expected = Math.min(MANY, pages * PAGE_SIZE);
      await until(`${expected} rows`, async () => (await page.locator('#user-list li.token-row').count()) === expected);
      const keys = await rowKeys('#user-list');
      assert.deepEqual(keys, order.slice(0, expected), 'rows out of order or duplicated');
      assert.equal(new Set(keys).size, keys.length);
      for (const q of lists.slice(requestsBefore)) {
        assert.ok(q.get('cursor'), 'Load more did not send the next cursor');
        assert.equal(q.get('kind'), 'user');
      }
      if (expected < MANY) {
        assert.equal(await page.locator('#user-count').textContent(), `${expected} shown, more available`);
        assert.equal(await activeElementId(), 'user-more', 'focus left Load more');
      }
      if (pages === 2) {
        await more.scrollIntoViewIfNeeded();
        await screenshot('paged-second-page', { fullPage: false });
      }
      assert.ok(pages <= MANY / PAGE_SIZE, 'more pages than tokens');
    }
    assert.equal(pages, MANY / PAGE_SIZE);
    assert.equal(await page.locator('#user-count').textContent(), `${MANY} tokens`);
    // Load more is gone: focus went to the first token it brought.
    const firstOfLast = order[MANY - PAGE_SIZE];
    assert.equal(await activeElementId(), `toggle:${firstOfLast}`);
  }
}, { timeout: 120_000 });

/** Show: Active and Inactive in the section of a user whose user tokens are all inactive now. */
async function checkStatusFilter(section) {
  const userStatus = section.getByLabel('Show');
  await userStatus.selectOption({ label: 'Active' });
  await until('no active user tokens', async () =>
    (await page.locator('#user-list').textContent()) === 'No active user tokens.' &&
    (await page.locator('#user-list[aria-busy]').count()) === 0);
  assert.equal(await page.locator('#user-more').isVisible(), false);
  await userStatus.selectOption({ label: 'Inactive' });
  await until('one page of inactive user tokens', async () =>
    (await page.locator('#user-list li.token-row').count()) === PAGE_SIZE &&
    (await page.locator('#user-list[aria-busy]').count()) === 0);
  assert.equal(await page.locator('#user-count').textContent(), `${PAGE_SIZE} shown, more available`);
  const inactiveOrder = (await listAll(MANY_USER, 'user')).map((t) => t.key);
  assert.deepEqual(await rowKeys('#user-list'), inactiveOrder.slice(0, PAGE_SIZE));
  await page.locator('#user-more').click();
  await until('two pages', async () => (await page.locator('#user-list li.token-row').count()) === 2 * PAGE_SIZE);
  assert.deepEqual(await rowKeys('#user-list'), inactiveOrder.slice(0, 2 * PAGE_SIZE));
  const destinationStatus = page.locator('#destination-section').getByLabel('Show');
  await destinationStatus.selectOption({ label: 'Active' });
  await until('the active destination tokens', async () =>
    (await page.locator('#destination-count').textContent()) === '3 tokens' &&
    (await page.locator('#destination-list[aria-busy]').count()) === 0);
  await checkAccessibility('with the status filters');
  await page.locator('#user-section').scrollIntoViewIfNeeded();
  await screenshot('status-filter', { fullPage: false });
  await userStatus.selectOption({ label: 'All' });
  await destinationStatus.selectOption({ label: 'All' });
  await until('all again', async () => (await page.locator('#user-count').textContent()) === `${PAGE_SIZE} shown, more available`);
}

step('Deactivate all… names the count of a dry run, deactivates them, and the list shows it', async () => {
  const { users, destinations } = state.many;
  const section = page.locator('#user-section');
  // A dry run changes nothing.
  const dry = await apiCall('POST', `/v1/users/${MANY_USER}/tokens/deactivate`, { reason: 'bulk', kind: 'user', dry_run: true });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.dry_run, true);
  assert.equal(dry.body.matching, MANY);
  assert.equal((await verify(users[0].key, users[0].token)).status, 200);

  await section.getByRole('button', { name: 'Deactivate all…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Deactivate all user tokens' });
  await dialog.waitFor();
  await until('the count', async () => (await page.locator('#bulk-question').textContent()) === `Deactivate ${MANY} active user tokens?`);
  assert.equal(await activeElementId(), 'bulk-cancel', 'focus is not on Cancel');
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press('Tab');
    assert.ok(await focusIsInside('#bulk-dialog'), 'Tab left the dialog');
  }
  await checkAccessibility('in the deactivate-all dialog');
  await screenshot('deactivate-all-confirm', { fullPage: false });
  await dialog.getByLabel('Reason').selectOption('compromised');
  await dialog.getByRole('button', { name: `Deactivate ${MANY} tokens` }).click();
  await until('the result', async () => (await page.locator('#bulk-question').textContent()) === `${MANY} tokens deactivated.`);
  assert.equal(await dialog.getByRole('button', { name: `Deactivate ${MANY} tokens` }).count(), 0);
  await screenshot('deactivate-all-done', { fullPage: false });
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await activeElementId(), 'user-bulk');

  // The list was reloaded, as much of it as was shown: every row inactive.
  await until('every user row to be inactive', async () => {
    const labels = await page.locator('#user-list .status-label').allTextContents();
    return labels.length === MANY && labels.every((l) => l === 'Inactive (compromised)');
  });
  assert.deepEqual(new Set(await rowKeys('#user-list')), new Set(users.map((t) => t.key)));
  const verified = await verifyMany(users);
  assert.deepEqual([...new Set(verified.map((v) => v.status))], [401]);
  assert.deepEqual([...new Set(verified.map((v) => v.body.reason))], ['inactive']);
  // The destination tokens were not touched.
  for (const v of await verifyMany(destinations)) assert.equal(v.status, 200);
  const destinationLabels = await page.locator('#destination-list .status-label').allTextContents();
  assert.deepEqual(destinationLabels, ['Active', 'Active', 'Active']);
  await screenshot('deactivated-all', { fullPage: false });

  // Show: Active finds none of them now; Inactive pages through them like All did.
  await checkStatusFilter(section);

  // Nothing left to deactivate: a message, no button.
  await section.getByRole('button', { name: 'Deactivate all…' }).click();
  await dialog.waitFor();
  await until('the message', async () =>
    (await page.locator('#bulk-question').textContent()) === 'No active user tokens: there is nothing to deactivate.');
  assert.equal(await page.locator('#bulk-ok').isVisible(), false);
  assert.equal(await page.locator('#bulk-reason-field').isVisible(), false);
  await screenshot('deactivate-all-none', { fullPage: false });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });

  // The destination section counts its own, and Cancel changes nothing.
  await page.locator('#destination-section').getByRole('button', { name: 'Deactivate all…' }).click();
  const other = page.getByRole('dialog', { name: 'Deactivate all destination tokens' });
  await other.waitFor();
  await until('the destination count', async () =>
    (await page.locator('#bulk-question').textContent()) === 'Deactivate 3 active destination tokens?');
  await other.getByRole('button', { name: 'Cancel' }).click();
  await other.waitFor({ state: 'hidden' });
  for (const v of await verifyMany(destinations)) assert.equal(v.status, 200);
}, { timeout: 120_000 });

step('a user with 5,000 tokens: the page shows one page, Load more the next, and Deactivate all… names 5,000', async () => {
  const HUGE_USER = 'carol.e2e@example.com';
  const HUGE = 5000;
  const users = await createMany(HUGE_USER, Array.from({ length: HUGE }, (_, i) => ({ description: `Device ${i + 1}` })), 50);
  const order = (await listAll(HUGE_USER, 'user')).map((t) => t.key);
  assert.equal(order.length, HUGE);

  await switchUser(HUGE_USER);
  await until('the first page', async () => (await page.locator('#user-list li.token-row').count()) === PAGE_SIZE &&
    (await page.locator('.token-list[aria-busy]').count()) === 0, 20_000);
  assert.deepEqual(await rowKeys('#user-list'), order.slice(0, PAGE_SIZE));
  assert.equal(await page.locator('#user-count').textContent(), `${PAGE_SIZE} shown, more available`);
  await page.locator('#user-section').getByRole('button', { name: 'Load more' }).click();
  await until('the second page', async () => (await page.locator('#user-list li.token-row').count()) === 2 * PAGE_SIZE);
  assert.deepEqual(await rowKeys('#user-list'), order.slice(0, 2 * PAGE_SIZE));
  // Never all at once: a page (and one token to look ahead) per request, a few requests.
  for (const q of listRequests) assert.ok(Number(q.get('limit')) <= PAGE_SIZE + 1, `limit ${q.get('limit')}`);
  assert.ok(listRequests.length <= 6, `${listRequests.length} list requests for two pages`);

  await page.locator('#user-section').getByRole('button', { name: 'Deactivate all…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Deactivate all user tokens' });
  await dialog.waitFor();
  await until('the count', async () => (await page.locator('#bulk-question').textContent()) === 'Deactivate 5,000 active user tokens?');
  await dialog.getByRole('button', { name: 'Deactivate 5,000 tokens' }).click();
  await until('the result', async () => (await page.locator('#bulk-question').textContent()) === '5,000 tokens deactivated.', 60_000);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.waitFor({ state: 'hidden' });
  // Read-your-writes: every one of them fails verification now (every 25th checked).
  const verified = await verifyMany(users.filter((_, i) => i % 25 === 0));
  assert.deepEqual([...new Set(verified.map((v) => v.status))], [401]);
  const again = await apiCall('POST', `/v1/users/${HUGE_USER}/tokens/deactivate`, { reason: 'bulk', dry_run: true });
  assert.equal(again.body.matching, 0);
}, { timeout: 240_000 });

step('a refused operator secret sends the page back to sign-in with the message', async () => {
  await page.evaluate((user) => sessionStorage.setItem('tokenledger.session',
    JSON.stringify({ secret: 'a-secret-that-was-changed', user })), USER);
  const refusal = await apiCall('GET', `/v1/users/${USER}/tokens`, undefined, 'a-secret-that-was-changed');
  await expectingApiErrors([401], async () => {
    await page.reload();
    await page.locator('#signin-view').waitFor({ state: 'visible' });
    await until('the sign-in message', async () => (await page.locator('#signin-alert').textContent()).includes(refusal.body.error.message));
  });
  const s = await pageState();
  assert.deepEqual(s.session, {}, 'the refused secret is still in sessionStorage');
  assert.equal(await page.getByLabel('User id').inputValue(), USER);
  await screenshot('signed-out-by-401');
});

step('sign in again, then sign out clears the session', async () => {
  await page.getByLabel('Operator secret').fill(OPERATOR_SECRET);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await row(state.first.key).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#signin-view').waitFor({ state: 'visible' });
  const s = await pageState();
  assert.deepEqual(s.session, {});
  assert.deepEqual(s.local, {});
  assert.ok(!s.html.includes(OPERATOR_SECRET));
  assert.equal(await page.locator('#user-list li').count(), 0, 'the token list is still in the page');
  await screenshot('signed-out');
});

step('no console errors, no page errors, no secret in the console or the daemon log', async () => {
  assert.deepEqual(consoleProblems, []);
  // Every expected API error was one that a step provoked on purpose.
  assert.ok(expectedApiErrors.length >= 5, `expected API errors: ${expectedApiErrors.join(', ')}`);
  for (const secret of secretsSeen) {
    assert.ok(!consoleTexts.some((t) => t.includes(secret)), 'a token secret was written to the console');
  }
  assert.ok(!consoleTexts.some((t) => t.includes(OPERATOR_SECRET)), 'the operator secret was written to the console');
  if (DAEMON_LOG && existsSync(DAEMON_LOG)) {
    const log = readFileSync(DAEMON_LOG, 'utf8');
    for (const secret of secretsSeen) assert.ok(!log.includes(secret), 'a token secret is in the daemon log');
  }
});
