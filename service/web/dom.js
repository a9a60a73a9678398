// Small DOM helpers for the Tokens page: element building (text only, never
// HTML strings), modal dialogs that keep and return focus, locale formatting,
// and copying to the clipboard. Relative times come from time.js (no DOM, unit-tested).

import { relativeTime } from './time.js';

/**
 * Builds an element. props: class, text, dataset, on<event> handlers, and
 * attributes (true → present, false/null/undefined → absent). Children are
 * nodes or strings (inserted as text).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export { relativeTime };

// ---------------------------------------------------------------- formatting

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

/**
 * A <time> element for an RFC 3339 string, in the user's locale; style 'date',
 * 'short' (no seconds), 'datetime', or 'relative' ("in 29 days"; `text` if given).
 * The full date and time is its title.
 */
export function timeEl(iso, style = 'datetime', text = undefined) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', { text: iso });
  text ??= style === 'relative' ? relativeTime(iso)
    : (style === 'date' ? dateFormat : style === 'short' ? shortFormat : dateTimeFormat).format(d);
  return h('time', { datetime: iso, title: fullFormat.format(d) }, text);
}


// ---------------------------------------------------------------- dialogs

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), ' +
                  'select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => !el.closest('[hidden]') && el.getClientRects().length > 0);
}

// Tab and Shift+Tab wrap around inside an open modal dialog, so focus never
// leaves it for the (inert) page or the browser's own controls.
function trapFocus(event) {
  if (event.key !== 'Tab') return;
  const dialog = event.currentTarget;
  const items = focusables(dialog);
  if (items.length === 0) {
    event.preventDefault();
    return;
  }
  const first = items[0];
  const last = items[items.length - 1];
  const active = document.activeElement;
  if (event.shiftKey && (active === first || !dialog.contains(active))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !dialog.contains(active))) {
    event.preventDefault();
    first.focus();
  }
}

/** Where focus should go back to: the element itself or, if re-rendered meanwhile, its successor. */
export function focusTarget(el) {
  if (!el || el === document.body) return null;
  return { el, id: el.dataset?.focusId ?? null };
}

export function restoreFocus(target, fallback) {
  let el = target?.el;
  if (!el?.isConnected && target?.id) el = document.querySelector(`[data-focus-id="${CSS.escape(target.id)}"]`);
  if (!el?.isConnected || el.disabled || el.closest('[hidden]')) el = fallback;
  el?.focus?.();
}

// What each open dialog does when it closes: its cleanup hook (opts.onClose),
// run once and while the dialog is still open, then focus back to returnTo.
const closing = new WeakMap(); // dialog → {onClose, returnTo, done}

function runCleanup(dialog) {
  const hook = closing.get(dialog);
  if (!hook || hook.done) return;
  hook.done = true;
  hook.onClose?.();
}

// Once the dialog is closed: the cleanup if nothing ran it yet, then focus back.
function finishClose(dialog) {
  const hook = closing.get(dialog);
  if (!hook) return;
  runCleanup(dialog);
  closing.delete(dialog);
  restoreFocus(hook.returnTo, [...document.querySelectorAll('main h1')].find((x) => !x.closest('[hidden]')));
}

// Escape (any close request) fires `cancel` synchronously, before the dialog
// closes: the cleanup runs then. (An <input type=file> has a bubbling `cancel`.)
function onCancel(event) {
  if (event.target === event.currentTarget) runCleanup(event.currentTarget);
}

// The `close` event is a task queued when the dialog closed, so it may come after
// the dialog is already hidden: only a safety net for the cleanup, and where focus
// returns after Escape. Not if the dialog was opened again meanwhile.
function onClosed(event) {
  const dialog = event.currentTarget;
  if (!dialog.open) finishClose(dialog);
}

/**
 * Opens a <dialog> as a modal. opts.focus: the element to focus first;
 * opts.returnTo: where focus goes when it closes (default: the element that had
 * it); opts.onClose: called once, however it closes, and synchronously before
 * it closes (closeDialog, or Escape's `cancel`), so no frame shows a closed
 * dialog still holding what the hook removes.
 */
export function openDialog(dialog, opts = {}) {
  if (!dialog.dataset.wired) {
    dialog.addEventListener('keydown', trapFocus);
    dialog.addEventListener('cancel', onCancel);
    dialog.addEventListener('close', onClosed);
    dialog.dataset.wired = 'yes';
  }
  if (!dialog.open) runCleanup(dialog); // an earlier close whose `close` event has not come yet
  const returnTo = opts.returnTo ?? focusTarget(document.activeElement);
  closing.set(dialog, { onClose: opts.onClose, returnTo, done: false });
  dialog.showModal();
  (opts.focus ?? focusables(dialog)[0])?.focus();
  return returnTo;
}

/**
 * Closes a dialog opened by openDialog: its cleanup hook first, while it is
 * still open, then close(), then focus back. Every close in the page's code
 * goes through here, never through dialog.close().
 */
export function closeDialog(dialog) {
  runCleanup(dialog);
  if (dialog.open) dialog.close();
  finishClose(dialog);
}

// ---------------------------------------------------------------- clipboard

/**
 * Copies text; resolves to true on success. Uses the Clipboard API where the
 * page may, else a selected off-screen textarea and execCommand('copy'),
 * placed inside `container` (an open modal dialog: the rest of the page is inert).
 */
export async function copyText(text, container) {
  if (navigator.clipboard?.writeText && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the older way
    }
  }
  const previous = document.activeElement;
  const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  area.value = text;
  container.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.value = '';
  area.remove();
  previous?.focus?.();
  return ok;
}

/** Selects the text of an element, so the user can copy it by hand. */
export function selectContents(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}
