// The Tokens page of tokenledgerd: sign in as the operator for one user, list
// that user's destination tokens and own tokens a page at a time (oldest first,
// "Load more" appends the next page), create (with an optional expiry),
// activate/deactivate one or all, rotate, and read a token's history. Talks only
// to the HTTP API (docs/api.md).
//
// Secrets: the operator secret is in sessionStorage (api.js). A token's secret
// is put into the secret dialog's DOM when the API returns it, deleted from the
// response object at once, and removed from the DOM synchronously before the
// dialog closes, however it closes (OK, ×, Escape: dom.js closeDialog and the
// `cancel` event); no variable keeps it, and it is never stored, logged or put
// into a URL.

import { ApiError, clearSession, loadSession, saveSession, tokenApi } from './api.js';
import { MAX_DESCRIPTION, checkDescription, userIdProblem } from './rules.js';
import { $, closeDialog, copyText, focusTarget, h, openDialog, relativeTime, restoreFocus, selectContents, timeEl } from './dom.js';
import { expiryChoice, expiryText, lastUsedText, localInputValue } from './time.js';

const MAX_GRACE_SECONDS = 31622400;
// Tokens per "Load more" (and on the first load) in each section: a user with
// thousands of tokens is never loaded at once.
const PAGE_SIZE = 50;
// Requests one "Load more" may make: the API may answer short pages while it
// filters (kind), so the page follows next_cursor until it has PAGE_SIZE tokens.
const MAX_REQUESTS_PER_LOAD = 20;

const KIND_LABEL = { user: 'User', destination: 'Destination' };
const KIND_PLURAL = { user: 'user tokens', destination: 'destination tokens' };
const KIND_SINGULAR = { user: 'user token', destination: 'destination token' };
const REASON_LABEL = {
  manual: 'manual',
  rotation: 'rotation',
  compromised: 'compromised',
  expired: 'expired',
  bulk: 'bulk',
};

let session = null; // {secret, user}
let api = null;
let highlightKey = null;

// Each section's tokens, in creation order: `paged` is what the pages loaded so far
// hold; `extra` the tokens this page created (or rotated to) that the pages have not
// reached yet: newer than every loaded one, so shown after them, until a page brings
// them (no duplicates). `ahead`: tokens fetched beyond the last page shown, kept
// for the next one; `cursor` the API's next_cursor, null once all is fetched;
// `generation` counts loads, so an answer to a superseded one is dropped;
// `status` the Show filter ('' all).
function emptySection() {
  return { paged: [], extra: [], ahead: [], cursor: null, more: false, loaded: false, loading: false, generation: 0, status: '' };
}
const sections = { destination: emptySection(), user: emptySection() };
const KINDS = Object.keys(sections);

function sectionOf(token) {
  return token.kind === 'destination' ? 'destination' : 'user';
}

/** Whether a token belongs in a section: its kind, and the status the section shows ('' all). */
function matches(token, kind, status) {
  return sectionOf(token) === kind && (!status || token.status === status);
}

function shown(kind) {
  const s = sections[kind];
  const keys = new Set(s.paged.map((t) => t.key));
  return [...s.paged, ...s.extra.filter((t) => !keys.has(t.key) && matches(t, kind, s.status))];
}

// ---------------------------------------------------------------- elements

const el = {
  session: $('#session'),
  sessionUser: $('#session-user'),
  signOut: $('#sign-out'),
  signinView: $('#signin-view'),
  signinTitle: $('#signin-title'),
  signinAlert: $('#signin-alert'),
  signinForm: $('#signin-form'),
  signinSecret: $('#signin-secret'),
  signinUser: $('#signin-user'),
  signinSubmit: $('#signin-submit'),
  tokensView: $('#tokens-view'),
  tokensTitle: $('#tokens-title'),
  pageAlert: $('#page-alert'),
  pageAlertText: $('#page-alert-text'),
  pageAlertClose: $('#page-alert-close'),
  pageStatus: $('#page-status'),
  refreshButton: $('#refresh-button'),
  list: { destination: $('#destination-list'), user: $('#user-list') },
  count: { destination: $('#destination-count'), user: $('#user-count') },
  more: { destination: $('#destination-more'), user: $('#user-more') },
  bulkButton: { destination: $('#destination-bulk'), user: $('#user-bulk') },
  status: { destination: $('#destination-status'), user: $('#user-status') },
  createButton: $('#create-button'),
  createDialog: $('#create-dialog'),
  createForm: $('#create-form'),
  createDescription: $('#create-description'),
  createCount: $('#create-count'),
  createError: $('#create-error'),
  createExpiry: $('#create-expiry'),
  createExpiryCustom: $('#create-expiry-custom'),
  createExpiryAt: $('#create-expiry-at'),
  createExpiryError: $('#create-expiry-error'),
  createOk: $('#create-ok'),
  secretDialog: $('#secret-dialog'),
  secretTitle: $('#secret-title'),
  secretKey: $('#secret-key'),
  secretToken: $('#secret-token'),
  secretPrevious: $('#secret-previous'),
  copyStatus: $('#copy-status'),
  secretOk: $('#secret-ok'),
  rotateDialog: $('#rotate-dialog'),
  rotateForm: $('#rotate-form'),
  rotateDescription: $('#rotate-description'),
  rotateKey: $('#rotate-key'),
  rotateGrace: $('#rotate-grace'),
  rotateUnit: $('#rotate-unit'),
  rotateError: $('#rotate-error'),
  rotateOk: $('#rotate-ok'),
  bulkDialog: $('#bulk-dialog'),
  bulkForm: $('#bulk-form'),
  bulkTitle: $('#bulk-title'),
  bulkQuestion: $('#bulk-question'),
  bulkDetail: $('#bulk-detail'),
  bulkReasonField: $('#bulk-reason-field'),
  bulkReason: $('#bulk-reason'),
  bulkError: $('#bulk-error'),
  bulkCancel: $('#bulk-cancel'),
  bulkOk: $('#bulk-ok'),
  historyDialog: $('#history-dialog'),
  historyTitle: $('#history-title'),
  historySubject: $('#history-subject'),
  historyLineage: $('#history-lineage'),
  historyError: $('#history-error'),
  historyEvents: $('#history-events'),
};

// ---------------------------------------------------------------- small helpers

function showFieldError(node, message) {
  node.textContent = message;
  node.hidden = !message;
}

function showPageError(message) {
  el.pageAlertText.textContent = message;
  el.pageAlert.hidden = false;
}

function clearPageError() {
  el.pageAlert.hidden = true;
  el.pageAlertText.textContent = '';
}

function announce(message) {
  // Cleared first, so the same message twice is announced twice.
  el.pageStatus.textContent = '';
  requestAnimationFrame(() => { el.pageStatus.textContent = message; });
}

function tokenByKey(key) {
  for (const kind of KINDS) {
    const found = shown(kind).find((t) => t.key === key);
    if (found) return found;
  }
  return undefined;
}

/** Puts a token the API returned in place of the one with its key, wherever it is shown. */
function replaceToken(updated) {
  for (const s of Object.values(sections)) {
    s.paged = s.paged.map((t) => (t.key === updated.key ? updated : t));
    s.extra = s.extra.map((t) => (t.key === updated.key ? updated : t));
  }
}

/** Adds a token this page just created (or rotated to) to its section, after the loaded ones. */
function addToken(token) {
  const s = sections[sectionOf(token)];
  if (s.paged.some((t) => t.key === token.key)) replaceToken(token);
  else s.extra = [...s.extra.filter((t) => t.key !== token.key), token];
}

/** A token object as the lists keep it: a copy without the command's extra fields (and never a secret). */
function tokenOf(answer) {
  const copy = { ...answer };
  for (const field of ['token', 'position', 'previous', 'changed']) delete copy[field];
  return copy;
}

function plural(n, one, many) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

function quoted(text) {
  return `“${text}”`;
}

/**
 * A 401 means the operator secret is gone or wrong: back to sign-in, with the
 * API's message. Returns true when it handled the error.
 */
function handleUnauthorized(error) {
  if (!(error instanceof ApiError) || error.status !== 401) return false;
  endSession(`You were signed out: ${error.message}. Sign in again.`);
  return true;
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message) {
  el.tokensView.hidden = true;
  el.session.hidden = true;
  el.signinView.hidden = false;
  document.title = 'Sign in · tokenledger';
  el.signinAlert.textContent = message ?? '';
  el.signinAlert.hidden = !message;
  el.signinSecret.value = '';
  el.signinSecret.removeAttribute('aria-invalid');
  el.signinUser.removeAttribute('aria-invalid');
  el.signinSubmit.disabled = false;
  el.signinSecret.focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const secret = el.signinSecret.value.trim();
  const user = el.signinUser.value.trim();
  el.signinSecret.removeAttribute('aria-invalid');
  el.signinUser.removeAttribute('aria-invalid');
  let problem = null;
  if (!secret) {
    problem = 'Enter the operator secret.';
    el.signinSecret.setAttribute('aria-invalid', 'true');
  } else if (!user) {
    problem = 'Enter the id of the user whose tokens you want to manage.';
    el.signinUser.setAttribute('aria-invalid', 'true');
  }
  if (problem) {
    el.signinAlert.textContent = problem;
    el.signinAlert.hidden = false;
    (secret ? el.signinUser : el.signinSecret).focus();
    return;
  }
  const candidate = { secret, user };
  el.signinSubmit.disabled = true;
  el.signinSubmit.textContent = 'Signing in…';
  try {
    await tokenApi(candidate).list({ limit: 1 });
    saveSession(candidate);
    el.signinSecret.value = '';
    el.signinAlert.hidden = true;
    startSession(candidate);
  } catch (error) {
    el.signinAlert.textContent = error.message;
    el.signinAlert.hidden = false;
    const field = error.status === 400 || userIdProblem(user) ? el.signinUser : el.signinSecret;
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  } finally {
    el.signinSubmit.disabled = false;
    el.signinSubmit.textContent = 'Sign in';
  }
}

function startSession(s) {
  session = s;
  api = tokenApi(s);
  el.signinView.hidden = true;
  el.tokensView.hidden = false;
  el.session.hidden = false;
  el.sessionUser.textContent = s.user;
  document.title = `Tokens · ${s.user} · tokenledger`;
  clearPageError();
  for (const kind of KINDS) {
    sections[kind] = emptySection();
    el.status[kind].value = '';
  }
  loadTokens();
  el.tokensTitle.focus();
}

function endSession(message) {
  clearSession();
  session = null;
  api = null;
  for (const dialog of document.querySelectorAll('dialog[open]')) closeDialog(dialog);
  for (const kind of KINDS) {
    sections[kind] = emptySection();
    el.list[kind].replaceChildren();
    el.count[kind].textContent = '';
    el.more[kind].hidden = true;
  }
  showSignIn(message);
}

// ---------------------------------------------------------------- the lists

/**
 * Fetches `want` tokens of one kind: first the `ahead` ones fetched before, then
 * from `cursor` on, following next_cursor through short pages, and one more than
 * wanted, kept back, so that "more available" is known and not a guess (a filtered
 * page can end with a next_cursor and nothing after it).
 * → {tokens, ahead, cursor, more}. An API without paging (no next_cursor) answers
 * everything at once: then that is all, filtered here by kind.
 */
async function fetchTokens(kind, { cursor, ahead = [], status = '' }, want) {
  // cursor: undefined to start from the first page, null when there is no more.
  const tokens = [...ahead];
  let next = cursor;
  let paged = true;
  for (let requests = 0; tokens.length <= want && requests < MAX_REQUESTS_PER_LOAD; requests++) {
    if (next === null) break;
    const page = await api.list({ kind, status: status || undefined, limit: Math.min(1000, want + 1 - tokens.length),
                                  cursor: next ?? undefined });
    for (const t of page.tokens) if (matches(t, kind, status)) tokens.push(t);
    paged = 'next_cursor' in page;
    next = typeof page.next_cursor === 'string' && page.next_cursor !== '' ? page.next_cursor : null;
    if (!paged) break;
  }
  next ??= null;
  if (!paged) return { tokens, ahead: [], cursor: null, more: false };
  return { tokens: tokens.slice(0, want), ahead: tokens.slice(want), cursor: next, more: tokens.length > want || next !== null };
}

function setBusy(kind, busy) {
  if (busy) {
    el.list[kind].setAttribute('aria-busy', 'true');
    el.more[kind].setAttribute('aria-disabled', 'true');
    el.more[kind].textContent = 'Loading…';
  } else {
    el.list[kind].removeAttribute('aria-busy');
    el.more[kind].removeAttribute('aria-disabled');
    el.more[kind].textContent = 'Load more';
  }
}

/**
 * (Re)loads both sections from their first page. keep: as many tokens as each
 * shows now (at least a page), so a refresh does not take away what "Load more"
 * brought; the tokens created here that the pages do not reach are fetched again.
 */
async function loadTokens({ keep = false } = {}) {
  await Promise.all(KINDS.map((kind) => loadSection(kind, keep)));
}

async function loadSection(kind, keep) {
  const s = sections[kind];
  const generation = ++s.generation;
  const want = keep ? Math.max(PAGE_SIZE, s.paged.length) : PAGE_SIZE;
  s.loading = true;
  setBusy(kind, true);
  if (!s.loaded) el.list[kind].replaceChildren(h('li', { class: 'empty' }, 'Loading…'));
  try {
    const page = await fetchTokens(kind, { status: s.status }, want);
    if (generation !== s.generation || !api) return;
    const keys = new Set(page.tokens.map((t) => t.key));
    let extra = s.extra.filter((t) => !keys.has(t.key));
    if (keep && extra.length) {
      extra = await Promise.all(extra.map((t) => api.get(t.key).catch(() => t)));
      if (generation !== s.generation || !api) return;
    }
    Object.assign(s, { paged: page.tokens, extra, ahead: page.ahead, cursor: page.cursor, more: page.more, loaded: true });
    renderSection(kind);
  } catch (error) {
    if (generation !== s.generation) return;
    if (handleUnauthorized(error)) return;
    showPageError(`Could not load the ${KIND_PLURAL[kind]}: ${error.message}`);
    if (!s.loaded) el.list[kind].replaceChildren();
  } finally {
    if (generation === s.generation) {
      s.loading = false;
      setBusy(kind, false);
    }
  }
}

/** "Load more": appends the section's next page. */
async function loadMore(kind) {
  const s = sections[kind];
  if (s.loading || !s.more || !api) return;
  const generation = ++s.generation;
  const before = shown(kind).length;
  s.loading = true;
  setBusy(kind, true);
  clearPageError();
  try {
    const page = await fetchTokens(kind, s, PAGE_SIZE);
    if (generation !== s.generation || !api) return;
    const keys = new Set(s.paged.map((t) => t.key));
    const added = page.tokens.filter((t) => !keys.has(t.key));
    const addedKeys = new Set(added.map((t) => t.key));
    s.paged = [...s.paged, ...added];
    s.extra = s.extra.filter((t) => !addedKeys.has(t.key));
    s.ahead = page.ahead;
    s.cursor = page.cursor;
    s.more = page.more;
    const focusWasOnMore = document.activeElement === el.more[kind];
    renderSection(kind);
    const total = shown(kind).length;
    announce(`${plural(added.length, `more ${KIND_SINGULAR[kind]}`, `more ${KIND_PLURAL[kind]}`)} loaded; ` +
             `${total.toLocaleString()} shown${s.more ? ', more available' : ', all of them'}.`);
    // The button stays where it is while there is more; once it is gone, focus
    // goes to the first token it brought.
    if (focusWasOnMore && !s.more) {
      const first = el.list[kind].children[Math.min(before, el.list[kind].children.length - 1)];
      (first?.querySelector('button:not([disabled])') ?? el.tokensTitle).focus();
    }
  } catch (error) {
    if (generation !== s.generation) return;
    if (handleUnauthorized(error)) return;
    showPageError(`Could not load more ${KIND_PLURAL[kind]}: ${error.message}`);
  } finally {
    if (generation === s.generation) {
      s.loading = false;
      setBusy(kind, false);
    }
  }
}

const EMPTY_TEXT = {
  destination: 'No destination tokens. The platform creates one for each data destination you connect.',
  user: 'No tokens yet. Choose CREATE + to make one.',
};

function renderTokens() {
  for (const kind of KINDS) renderSection(kind);
}

function renderSection(kind) {
  const s = sections[kind];
  const list = el.list[kind];
  const focused = focusTarget(document.activeElement);
  const inList = focused && list.contains(focused.el);
  const rows = shown(kind);
  const empty = s.more ? 'None in the part loaded so far: choose Load more.'
    : s.status ? `No ${s.status} ${KIND_PLURAL[kind]}.` : EMPTY_TEXT[kind];
  list.replaceChildren(...(rows.length ? rows.map(tokenRow) : [h('li', { class: 'empty' }, empty)]));
  // A count that is a total only when it is one.
  el.count[kind].textContent = s.more ? `${rows.length.toLocaleString()} shown, more available`
    : rows.length ? plural(rows.length, 'token', 'tokens') : '';
  el.more[kind].hidden = !s.more;
  if (inList) restoreFocus(focused, el.tokensTitle);
}

// The rows' relative times ("Expires in 3 minutes", "Last used 5 minutes ago") are
// brought up to date every half minute, in place: only their text changes.
const RELATIVE_EVERY_MS = 30_000;

function updateRelativeTimes() {
  const now = Date.now();
  for (const span of document.querySelectorAll('.token-expiry')) {
    const time = span.querySelector('time');
    const expiry = time && expiryText({ expires_at: time.dateTime }, now);
    if (!expiry || !(span.firstChild instanceof Text)) continue;
    span.firstChild.data = `${expiry.text} `;
    time.textContent = expiry.relative;
    span.classList.toggle('is-expired', expiry.text === 'Expired');
  }
  for (const time of document.querySelectorAll('.token-last-used time')) {
    const used = lastUsedText({ last_used_at: time.dateTime }, now);
    if (used.relative) time.textContent = used.relative;
  }
}

function statusParts(t) {
  if (t.status === 'expired') {
    return { text: 'Expired', detail: t.expires_at ? ['Since ', timeEl(t.expires_at)] : null };
  }
  if (t.status === 'active') {
    if (t.deactivates_at) return { text: 'Active', detail: ['Until ', timeEl(t.deactivates_at, 'short')], warn: true };
    return { text: 'Active', detail: null };
  }
  const reason = t.deactivation_reason && t.deactivation_reason !== 'manual'
    ? ` (${REASON_LABEL[t.deactivation_reason] ?? t.deactivation_reason})` : '';
  return { text: `Inactive${reason}`, detail: t.deactivated_at ? ['Since ', timeEl(t.deactivated_at, 'date')] : null };
}

function lineageButton(key) {
  return h('button', { type: 'button', class: 'link mono', dataset: { action: 'history', key, focusId: `lineage:${key}` },
                       'aria-label': `History of ${key}` }, key);
}

function tokenRow(t) {
  const id = t.key;
  const status = statusParts(t);
  const active = t.status === 'active';
  const meta = h('dl', { class: 'token-meta' },
    h('div', {}, h('dt', {}, 'Key'), h('dd', {}, h('code', { class: 'mono' }, t.key))),
    h('div', {}, h('dt', {}, 'Kind'),
      h('dd', {}, KIND_LABEL[t.kind] ?? t.kind, t.destination_id ? [' · ', h('span', { class: 'mono' }, t.destination_id)] : null)),
    h('div', {}, h('dt', {}, 'Created'), h('dd', {}, timeEl(t.created_at, 'date'))));
  const lineage = [];
  if (t.replaces) lineage.push(h('span', {}, 'Replaces ', lineageButton(t.replaces)));
  if (t.replaced_by) lineage.push(h('span', {}, 'Replaced by ', lineageButton(t.replaced_by)));
  const expiry = expiryText(t);
  const used = lastUsedText(t);
  const times = h('p', { class: 'token-times' },
    expiry ? h('span', { class: `token-expiry${expiry.text === 'Expired' ? ' is-expired' : ''}` },
      `${expiry.text} `, timeEl(expiry.at, 'relative', expiry.relative)) : null,
    h('span', { class: 'token-last-used' },
      used.at ? [`${used.text} `, timeEl(used.at, 'relative', used.relative)] : used.text));

  const sw = h('button', {
    type: 'button', role: 'switch', class: 'switch',
    'aria-checked': active ? 'true' : 'false',
    'aria-label': 'Active',
    'aria-describedby': `desc-${id} status-${id}`,
    disabled: t.status === 'expired',
    title: t.status === 'expired' ? 'An expired token cannot be activated' : null,
    dataset: { action: 'toggle', focusId: `toggle:${id}` },
  }, h('span', { class: 'switch-thumb', 'aria-hidden': 'true' }));

  return h('li', { class: `token-row${t.key === highlightKey ? ' is-new' : ''}`, dataset: { key: t.key } },
    h('div', { class: 'token-info' },
      h('h3', { class: 'token-desc', id: `desc-${id}` }, t.description),
      meta,
      times,
      lineage.length ? h('p', { class: 'token-lineage' }, lineage) : null),
    h('div', { class: 'token-actions' },
      h('div', { class: `token-status status-${t.status}${status.warn ? ' status-scheduled' : ''}` },
        sw,
        h('span', { class: 'status-text', id: `status-${id}` },
          h('span', { class: 'status-label' }, status.text),
          status.detail ? h('span', { class: 'status-detail' }, status.detail) : null)),
      h('div', { class: 'token-buttons' },
        h('button', {
          type: 'button', class: 'btn btn-small', 'aria-describedby': `desc-${id}`,
          disabled: Boolean(t.replaced_by) || t.status === 'expired',
          title: t.replaced_by ? `Already rotated to ${t.replaced_by}`
            : t.status === 'expired' ? 'An expired token cannot be rotated' : null,
          dataset: { action: 'rotate', focusId: `rotate:${id}` },
        }, 'Rotate'),
        h('button', {
          type: 'button', class: 'btn btn-small', 'aria-describedby': `desc-${id}`,
          dataset: { action: 'history', key: t.key, focusId: `history:${id}` },
        }, 'History'))));
}

function onListClick(event) {
  const button = event.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  const row = button.closest('[data-key]');
  const key = button.dataset.key ?? row?.dataset.key;
  if (!key) return;
  if (button.dataset.action === 'toggle') toggle(button, key);
  else if (button.dataset.action === 'rotate') openRotate(key);
  else if (button.dataset.action === 'history') openHistory(key);
}

// ---------------------------------------------------------------- activate / deactivate

function setSwitch(sw, on) {
  sw.setAttribute('aria-checked', on ? 'true' : 'false');
}

async function toggle(sw, key) {
  if (sw.getAttribute('aria-busy') === 'true') return;
  const token = tokenByKey(key);
  if (!token) return;
  const activate = sw.getAttribute('aria-checked') !== 'true';
  clearPageError();
  setSwitch(sw, activate); // at once; undone if the API refuses
  sw.setAttribute('aria-busy', 'true');
  const label = sw.closest('.token-status')?.querySelector('.status-label');
  if (label) label.textContent = activate ? 'Activating…' : 'Deactivating…';
  try {
    const updated = tokenOf(activate ? await api.activate(key) : await api.deactivate(key));
    replaceToken(updated);
    renderSection(sectionOf(updated));
    announce(`${quoted(updated.description)} is now ${updated.status === 'active' ? 'active' : 'inactive'}.`);
  } catch (error) {
    if (handleUnauthorized(error)) return;
    setSwitch(sw, !activate);
    sw.removeAttribute('aria-busy');
    if (label) label.textContent = statusParts(token).text;
    showPageError(`Could not ${activate ? 'activate' : 'deactivate'} ${quoted(token.description)}: ${error.message}`);
  }
}

// ---------------------------------------------------------------- CREATE +

function updateCount() {
  const { length, problem } = checkDescription(el.createDescription.value);
  el.createCount.textContent = `${length} / ${MAX_DESCRIPTION}`;
  el.createCount.classList.toggle('count-over', length > MAX_DESCRIPTION);
  if (problem && problem !== 'empty') el.createDescription.setAttribute('aria-invalid', 'true');
  else el.createDescription.removeAttribute('aria-invalid');
}

function showExpiryError(message) {
  showFieldError(el.createExpiryError, message);
  const field = el.createExpiry.value === 'custom' ? el.createExpiryAt : el.createExpiry;
  if (message) field.setAttribute('aria-invalid', 'true');
  else {
    el.createExpiry.removeAttribute('aria-invalid');
    el.createExpiryAt.removeAttribute('aria-invalid');
  }
}

function updateExpiry() {
  const custom = el.createExpiry.value === 'custom';
  el.createExpiryCustom.hidden = !custom;
  el.createExpiryAt.min = localInputValue(new Date());
  showExpiryError('');
}

function openCreate() {
  el.createForm.reset();
  showFieldError(el.createError, '');
  updateExpiry();
  el.createOk.disabled = false;
  updateCount();
  openDialog(el.createDialog, { focus: el.createDescription });
}

async function onCreate(event) {
  event.preventDefault();
  if (el.createOk.disabled) return;
  // The expiry is checked here (in the future), since the API's "in the past"
  // would come too late to say which field; the API checks it again.
  const expiry = expiryChoice(el.createExpiry.value, el.createExpiryAt.value);
  if (expiry.problem) {
    showExpiryError(expiry.problem);
    (el.createExpiry.value === 'custom' ? el.createExpiryAt : el.createExpiry).focus();
    return;
  }
  showExpiryError('');
  const { problem } = checkDescription(el.createDescription.value);
  if (problem) el.createDescription.setAttribute('aria-invalid', 'true');
  // The API decides, and its message is the one shown, also when this page
  // already sees the problem: one set of rules, one wording.
  el.createOk.disabled = true;
  el.createOk.textContent = 'Creating…';
  try {
    const created = await api.create(el.createDescription.value, expiry.expiresAt);
    const returnTo = { el: el.createButton, id: 'create' };
    closeDialog(el.createDialog);
    highlightKey = created.key;
    showSecret(created, { title: 'Token created', returnTo }); // takes the secret out of `created`
    const token = tokenOf(created);
    addToken(token);
    renderSection(sectionOf(token));
  } catch (error) {
    if (handleUnauthorized(error)) return;
    if (error.code === 'invalid_expires_at') {
      showExpiryError(error.message);
      (el.createExpiry.value === 'custom' ? el.createExpiryAt : el.createExpiry).focus();
      return;
    }
    el.createDescription.setAttribute('aria-invalid', 'true');
    showFieldError(el.createError, error.message);
    el.createDescription.focus();
  } finally {
    el.createOk.disabled = false;
    el.createOk.textContent = 'OK';
  }
}

// ---------------------------------------------------------------- the secret, once

/** Shows the key and secret of a create or rotate response; takes the secret out of `result`. */
function showSecret(result, { title, previous, returnTo }) {
  el.secretTitle.textContent = title;
  el.secretKey.textContent = result.key;
  el.secretToken.textContent = result.token;
  delete result.token;
  el.copyStatus.textContent = '';
  if (previous) {
    const note = previous.status === 'active' && previous.deactivates_at
      ? ['The previous token ', h('code', { class: 'mono' }, previous.key), ' keeps working until ',
         timeEl(previous.deactivates_at), ` (${relativeTime(previous.deactivates_at)}), then it is deactivated.`]
      : ['The previous token ', h('code', { class: 'mono' }, previous.key), ' is deactivated now.'];
    el.secretPrevious.replaceChildren(...note);
    el.secretPrevious.hidden = false;
  } else {
    el.secretPrevious.replaceChildren();
    el.secretPrevious.hidden = true;
  }
  openDialog(el.secretDialog, {
    focus: el.secretDialog.querySelector('[data-copy="secret-token"]'),
    returnTo,
    onClose: clearSecret,
  });
}

function clearSecret() {
  el.secretKey.textContent = '';
  el.secretToken.textContent = '';
  el.copyStatus.textContent = '';
  el.secretPrevious.replaceChildren();
  el.secretPrevious.hidden = true;
  for (const label of el.secretDialog.querySelectorAll('.copy-label')) label.textContent = 'Copy';
  window.getSelection()?.removeAllRanges();
}

async function onCopy(event) {
  const button = event.target.closest('button[data-copy]');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const what = button.dataset.copy === 'secret-token' ? 'token' : 'token key';
  const ok = await copyText(source.textContent, el.secretDialog);
  for (const label of el.secretDialog.querySelectorAll('.copy-label')) label.textContent = 'Copy';
  el.copyStatus.classList.toggle('copy-status-manual', !ok);
  if (ok) {
    button.querySelector('.copy-label').textContent = 'Copied';
    el.copyStatus.textContent = `The ${what} is on the clipboard.`;
  } else {
    selectContents(source);
    el.copyStatus.textContent = `Copying is not allowed here: the ${what} is selected, press Ctrl+C (⌘C) to copy it.`;
  }
}

// ---------------------------------------------------------------- rotate

let rotating = null; // the key being rotated

function openRotate(key) {
  const token = tokenByKey(key);
  if (!token) return;
  rotating = key;
  el.rotateForm.reset();
  el.rotateDescription.textContent = token.description;
  el.rotateKey.textContent = token.key;
  el.rotateGrace.removeAttribute('aria-invalid');
  showFieldError(el.rotateError, '');
  el.rotateOk.disabled = false;
  openDialog(el.rotateDialog, { focus: el.rotateGrace, onClose: () => { rotating = null; } });
}

async function onRotate(event) {
  event.preventDefault();
  if (el.rotateOk.disabled || !rotating) return;
  const key = rotating;
  const raw = el.rotateGrace.value.trim();
  const amount = raw === '' ? NaN : Number(raw);
  if (!Number.isInteger(amount) || amount < 0) {
    el.rotateGrace.setAttribute('aria-invalid', 'true');
    showFieldError(el.rotateError, 'Enter a whole number, 0 or more.');
    el.rotateGrace.focus();
    return;
  }
  const seconds = amount * Number(el.rotateUnit.value);
  if (seconds > MAX_GRACE_SECONDS) el.rotateGrace.setAttribute('aria-invalid', 'true');
  el.rotateOk.disabled = true;
  el.rotateOk.textContent = 'Rotating…';
  try {
    const successor = await api.rotate(key, seconds);
    // The old row's Rotate button is disabled once rotated: focus returns to its History.
    const returnTo = { el: null, id: `history:${key}` };
    closeDialog(el.rotateDialog);
    highlightKey = successor.key;
    showSecret(successor, { title: 'Token rotated', previous: successor.previous, returnTo });
    const next = tokenOf(successor);
    const previous = successor.previous ? tokenOf(successor.previous) : null;
    if (previous) replaceToken(previous);
    addToken(next);
    renderSection(sectionOf(next));
    // The old token as the read model holds it now (lineage, status), in place.
    api.get(key).then((old) => {
      replaceToken(old);
      renderSection(sectionOf(old));
    }, () => {});
  } catch (error) {
    if (handleUnauthorized(error)) return;
    el.rotateGrace.setAttribute('aria-invalid', 'true');
    // The API counts seconds; say what the amount came to in them.
    const unit = el.rotateUnit.selectedOptions[0]?.textContent ?? 'seconds';
    const inSeconds = error.status === 400 && unit !== 'seconds'
      ? ` (${amount.toLocaleString()} ${unit} is ${seconds.toLocaleString()} seconds; at most 366 days)` : '';
    showFieldError(el.rotateError, `${error.message}${inSeconds}`);
    el.rotateGrace.focus();
  } finally {
    el.rotateOk.disabled = false;
    el.rotateOk.textContent = 'Rotate';
  }
}

// ---------------------------------------------------------------- deactivate all

let bulkKind = null; // the kind the open dialog deactivates
let bulkRequest = 0;

function bulkView({ question, confirm = false, done = false }) {
  el.bulkQuestion.textContent = question;
  el.bulkDetail.hidden = !confirm;
  el.bulkReasonField.hidden = !confirm;
  el.bulkOk.hidden = !confirm;
  el.bulkCancel.textContent = confirm || !done ? 'Cancel' : 'Close';
}

/** "Deactivate all…": counts the section's active tokens (dry run), then asks. */
async function openBulk(kind) {
  const request = ++bulkRequest;
  bulkKind = kind;
  el.bulkForm.reset();
  el.bulkTitle.textContent = `Deactivate all ${KIND_PLURAL[kind]}`;
  showFieldError(el.bulkError, '');
  el.bulkOk.disabled = false;
  bulkView({ question: `Counting the active ${KIND_PLURAL[kind]}…` });
  openDialog(el.bulkDialog, { focus: el.bulkCancel, onClose: () => { bulkKind = null; bulkRequest++; } });
  try {
    const answer = await api.deactivateAll({ kind, reason: 'bulk', dryRun: true });
    if (request !== bulkRequest) return;
    const n = answer.matching;
    if (n === 0) {
      bulkView({ question: `No active ${KIND_PLURAL[kind]}: there is nothing to deactivate.`, done: true });
      return;
    }
    bulkView({ question: `Deactivate ${plural(n, `active ${KIND_SINGULAR[kind]}`, `active ${KIND_PLURAL[kind]}`)}?`, confirm: true });
    el.bulkOk.textContent = n === 1 ? 'Deactivate 1 token' : `Deactivate ${n.toLocaleString()} tokens`;
  } catch (error) {
    if (request !== bulkRequest) return;
    if (handleUnauthorized(error)) return;
    bulkView({ question: '', done: true });
    showFieldError(el.bulkError, `Could not count the active ${KIND_PLURAL[kind]}: ${error.message}`);
  }
}

async function onBulk(event) {
  event.preventDefault();
  if (el.bulkOk.disabled || el.bulkOk.hidden || !bulkKind) return;
  const kind = bulkKind;
  const request = bulkRequest;
  showFieldError(el.bulkError, '');
  el.bulkOk.disabled = true;
  const label = el.bulkOk.textContent;
  el.bulkOk.textContent = 'Deactivating…';
  try {
    const answer = await api.deactivateAll({ kind, reason: el.bulkReason.value, dryRun: false });
    const m = answer.deactivated ?? 0;
    // Fewer than matched: some changed meanwhile (another command deactivated them);
    // more: some were created meanwhile, and the API deactivated those too.
    const result = Number.isInteger(answer.matching) && m < answer.matching
      ? `${plural(m, 'token', 'tokens')} deactivated of ${answer.matching.toLocaleString()}; the others had changed meanwhile.`
      : `${plural(m, 'token', 'tokens')} deactivated.`;
    if (request === bulkRequest) {
      bulkView({ question: result, done: true });
      el.bulkCancel.focus();
    } else {
      announce(result);
    }
    loadTokens({ keep: true });
  } catch (error) {
    if (handleUnauthorized(error)) return;
    if (request === bulkRequest) showFieldError(el.bulkError, `Could not deactivate the ${KIND_PLURAL[kind]}: ${error.message}`);
    else showPageError(`Could not deactivate the ${KIND_PLURAL[kind]}: ${error.message}`);
  } finally {
    el.bulkOk.disabled = false;
    el.bulkOk.textContent = label;
  }
}

// ---------------------------------------------------------------- history

const EVENT_TITLE = { created: 'Created', activated: 'Activated', deactivated: 'Deactivated' };

function historyItem(e) {
  const details = [];
  if (e.type === 'created') {
    if (e.description !== undefined) details.push(['Description', e.description]);
    if (e.kind) details.push(['Kind', `${KIND_LABEL[e.kind] ?? e.kind}${e.destination_id ? ` · ${e.destination_id}` : ''}`]);
    if (e.replaces) details.push(['Replaces', lineageButton(e.replaces)]);
    if (e.expires_at) details.push(['Expires', timeEl(e.expires_at)]);
  }
  if (e.type === 'deactivated') {
    // The effective time only when it is not the event's own: a grace period
    // (scheduled) or a compromise found late (backdated).
    if (e.effective_at) {
      const delta = new Date(e.effective_at).getTime() - new Date(e.at).getTime();
      const when = delta > 1000 ? 'scheduled' : delta < -1000 ? 'backdated' : null;
      if (when) details.push(['Effective', [timeEl(e.effective_at), ` (${when})`]]);
    }
  }
  details.push(['Actor', e.actor ?? 'unknown']);
  if (e.request_id) details.push(['Request', h('code', { class: 'mono' }, e.request_id)]);
  return h('li', { class: `timeline-item event-${e.type}` },
    h('span', { class: 'timeline-dot', 'aria-hidden': 'true' }),
    h('div', { class: 'timeline-head' },
      h('strong', { class: 'timeline-title' }, EVENT_TITLE[e.type] ?? e.type),
      e.type === 'deactivated' && e.reason
        ? h('span', { class: `badge badge-${e.reason}` }, h('span', { class: 'visually-hidden' }, 'reason: '), REASON_LABEL[e.reason] ?? e.reason)
        : null,
      h('span', { class: 'timeline-time' }, timeEl(e.at))),
    h('dl', { class: 'timeline-details' }, details.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
}

let historyRequest = 0;

async function openHistory(key) {
  const request = ++historyRequest;
  const token = tokenByKey(key);
  el.historyTitle.textContent = 'History';
  el.historySubject.replaceChildren(token ? h('span', { class: 'history-desc' }, token.description) : null,
                                    h('code', { class: 'mono' }, key));
  el.historyLineage.hidden = true;
  el.historyLineage.replaceChildren();
  showFieldError(el.historyError, '');
  el.historyEvents.replaceChildren(h('li', { class: 'timeline-loading' }, 'Loading…'));
  el.historyEvents.setAttribute('aria-busy', 'true');
  if (!el.historyDialog.open) {
    openDialog(el.historyDialog, { focus: el.historyDialog.querySelector('.dialog-head [data-close]') });
  }
  try {
    const history = await api.history(key);
    if (request !== historyRequest) return;
    const created = history.events.find((e) => e.type === 'created');
    const description = token?.description ?? created?.description;
    el.historySubject.replaceChildren(description ? h('span', { class: 'history-desc' }, description) : null,
                                      h('code', { class: 'mono' }, key));
    const lineage = [];
    if (history.replaces) lineage.push(h('span', {}, 'Replaces ', lineageButton(history.replaces)));
    if (history.replaced_by) lineage.push(h('span', {}, 'Replaced by ', lineageButton(history.replaced_by)));
    el.historyLineage.replaceChildren(h('span', { class: 'lineage-label' }, 'Rotation'), ...lineage);
    el.historyLineage.hidden = lineage.length === 0;
    el.historyEvents.replaceChildren(...history.events.map(historyItem));
  } catch (error) {
    if (request !== historyRequest) return;
    if (handleUnauthorized(error)) return;
    el.historyEvents.replaceChildren();
    showFieldError(el.historyError, `Could not load the history: ${error.message}`);
  } finally {
    if (request === historyRequest) el.historyEvents.removeAttribute('aria-busy');
  }
}

function onHistoryClick(event) {
  const button = event.target.closest('button[data-action="history"]');
  if (!button) return;
  openHistory(button.dataset.key).then(() => {
    el.historyDialog.querySelector('.dialog-head [data-close]')?.focus();
  });
}

// ---------------------------------------------------------------- wiring

function init() {
  el.signinForm.addEventListener('submit', onSignIn);
  el.signOut.addEventListener('click', () => {
    endSession(null);
    el.signinAlert.hidden = true;
    announce('Signed out.');
  });
  el.pageAlertClose.addEventListener('click', () => {
    clearPageError();
    el.tokensTitle.focus();
  });
  for (const kind of KINDS) {
    el.list[kind].addEventListener('click', onListClick);
    el.more[kind].addEventListener('click', () => loadMore(kind));
    el.bulkButton[kind].addEventListener('click', () => openBulk(kind));
    el.status[kind].addEventListener('change', async () => {
      if (!api) return;
      sections[kind].status = el.status[kind].value;
      clearPageError();
      await loadSection(kind, false);
      if (!api) return;
      const n = shown(kind).length;
      const status = sections[kind].status;
      announce(sections[kind].more ? `${n.toLocaleString()} shown, more available.`
        : n ? `${plural(n, `${status} token`.trim(), `${status} tokens`.trim())}.`
          : `No ${status ? `${status} ` : ''}${KIND_PLURAL[kind]}.`);
    });
  }
  el.refreshButton.addEventListener('click', async () => {
    if (!api || el.refreshButton.getAttribute('aria-disabled') === 'true') return;
    clearPageError();
    el.refreshButton.setAttribute('aria-disabled', 'true');
    try {
      await loadTokens({ keep: true });
      if (api) announce('Tokens reloaded.');
    } finally {
      el.refreshButton.removeAttribute('aria-disabled');
    }
  });
  el.bulkForm.addEventListener('submit', onBulk);
  el.createButton.addEventListener('click', openCreate);
  el.createForm.addEventListener('submit', onCreate);
  el.createDescription.addEventListener('input', () => {
    showFieldError(el.createError, '');
    updateCount();
  });
  el.createExpiry.addEventListener('change', updateExpiry);
  el.createExpiryAt.addEventListener('input', () => showExpiryError(''));
  el.secretDialog.addEventListener('click', onCopy);
  el.secretOk.addEventListener('click', () => closeDialog(el.secretDialog));
  el.rotateForm.addEventListener('submit', onRotate);
  el.rotateGrace.addEventListener('input', () => {
    el.rotateGrace.removeAttribute('aria-invalid');
    showFieldError(el.rotateError, '');
  });
  el.historyDialog.addEventListener('click', onHistoryClick);
  for (const button of document.querySelectorAll('dialog [data-close]')) {
    button.addEventListener('click', () => closeDialog(button.closest('dialog')));
  }

  setInterval(updateRelativeTimes, RELATIVE_EVERY_MS);

  const saved = loadSession();
  if (saved) {
    el.signinUser.value = saved.user;
    startSession(saved);
  } else {
    showSignIn(null);
  }
}

init();
