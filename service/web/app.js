// The Tokens page of tokenledgerd: sign in as the operator for one user, list
// that user's destination tokens and own tokens, create, activate/deactivate,
// rotate, and read a token's history. Talks only to the HTTP API (docs/api.md).
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

const MAX_GRACE_SECONDS = 31622400;

const KIND_LABEL = { user: 'User', destination: 'Destination' };
const REASON_LABEL = {
  manual: 'manual',
  rotation: 'rotation',
  compromised: 'compromised',
  expired: 'expired',
  bulk: 'bulk',
};

let session = null; // {secret, user}
let api = null;
let tokens = [];
let highlightKey = null;

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
  destinationList: $('#destination-list'),
  userList: $('#user-list'),
  createButton: $('#create-button'),
  createDialog: $('#create-dialog'),
  createForm: $('#create-form'),
  createDescription: $('#create-description'),
  createCount: $('#create-count'),
  createError: $('#create-error'),
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
  return tokens.find((t) => t.key === key);
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
    const list = await tokenApi(candidate).list();
    saveSession(candidate);
    el.signinSecret.value = '';
    el.signinAlert.hidden = true;
    startSession(candidate, list);
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

function startSession(s, list) {
  session = s;
  api = tokenApi(s);
  el.signinView.hidden = true;
  el.tokensView.hidden = false;
  el.session.hidden = false;
  el.sessionUser.textContent = s.user;
  document.title = `Tokens · ${s.user} · tokenledger`;
  clearPageError();
  if (list) {
    tokens = list.tokens;
    renderTokens();
  } else {
    loadTokens();
  }
  el.tokensTitle.focus();
}

function endSession(message) {
  clearSession();
  session = null;
  api = null;
  tokens = [];
  for (const dialog of document.querySelectorAll('dialog[open]')) closeDialog(dialog);
  el.destinationList.replaceChildren();
  el.userList.replaceChildren();
  showSignIn(message);
}

// ---------------------------------------------------------------- the lists

async function loadTokens() {
  el.destinationList.setAttribute('aria-busy', 'true');
  el.userList.setAttribute('aria-busy', 'true');
  if (tokens.length === 0) {
    const loading = () => h('li', { class: 'empty' }, 'Loading…');
    el.destinationList.replaceChildren(loading());
    el.userList.replaceChildren(loading());
  }
  try {
    const list = await api.list();
    tokens = list.tokens;
    renderTokens();
  } catch (error) {
    if (handleUnauthorized(error)) return;
    showPageError(`Could not load the tokens: ${error.message}`);
    if (tokens.length === 0) renderTokens();
  } finally {
    el.destinationList.removeAttribute('aria-busy');
    el.userList.removeAttribute('aria-busy');
  }
}

function renderTokens() {
  const focused = focusTarget(document.activeElement);
  const inList = focused && (el.userList.contains(focused.el) || el.destinationList.contains(focused.el));
  const newestFirst = [...tokens].reverse();
  const destination = newestFirst.filter((t) => t.kind === 'destination');
  const own = newestFirst.filter((t) => t.kind !== 'destination');
  el.destinationList.replaceChildren(
    ...(destination.length ? destination.map(tokenRow)
      : [h('li', { class: 'empty' }, 'No destination tokens. The platform creates one for each data destination you connect.')]));
  el.userList.replaceChildren(
    ...(own.length ? own.map(tokenRow)
      : [h('li', { class: 'empty' }, 'No tokens yet. Choose CREATE + to make one.')]));
  if (inList) restoreFocus(focused, el.tokensTitle);
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
          disabled: Boolean(t.replaced_by),
          title: t.replaced_by ? `Already rotated to ${t.replaced_by}` : null,
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
    const updated = activate ? await api.activate(key) : await api.deactivate(key);
    delete updated.position;
    delete updated.changed;
    tokens = tokens.map((t) => (t.key === key ? updated : t));
    renderTokens();
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

function openCreate() {
  el.createForm.reset();
  showFieldError(el.createError, '');
  el.createOk.disabled = false;
  updateCount();
  openDialog(el.createDialog, { focus: el.createDescription });
}

async function onCreate(event) {
  event.preventDefault();
  if (el.createOk.disabled) return;
  const { problem } = checkDescription(el.createDescription.value);
  if (problem) el.createDescription.setAttribute('aria-invalid', 'true');
  // The API decides, and its message is the one shown, also when this page
  // already sees the problem: one set of rules, one wording.
  el.createOk.disabled = true;
  el.createOk.textContent = 'Creating…';
  try {
    const created = await api.create(el.createDescription.value);
    const returnTo = { el: el.createButton, id: 'create' };
    closeDialog(el.createDialog);
    highlightKey = created.key;
    showSecret(created, { title: 'Token created', returnTo });
    loadTokens();
  } catch (error) {
    if (handleUnauthorized(error)) return;
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
    loadTokens();
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
  el.destinationList.addEventListener('click', onListClick);
  el.userList.addEventListener('click', onListClick);
  el.createButton.addEventListener('click', openCreate);
  el.createForm.addEventListener('submit', onCreate);
  el.createDescription.addEventListener('input', () => {
    showFieldError(el.createError, '');
    updateCount();
  });
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

  const saved = loadSession();
  if (saved) {
    el.signinUser.value = saved.user;
    startSession(saved, null);
  } else {
    showSignIn(null);
  }
}

init();
