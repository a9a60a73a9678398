// Times on the Tokens page, without the DOM (tested by tests/web/time.test.mjs):
// relative times ("in 29 days", "2 hours ago"), what a row says about a token's
// expiry and last use, and the create dialog's expiry choice.

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86400;

const formats = new Map(); // locale → Intl.RelativeTimeFormat

function relativeFormat(locale) {
  if (!formats.has(locale)) formats.set(locale, new Intl.RelativeTimeFormat(locale, { numeric: 'auto' }));
  return formats.get(locale);
}

/**
 * "in 3 hours", "5 minutes ago", "in 29 days", in the user's locale (or `locale`).
 * Days up to 99 of them (so 30 and 90 days read as such), then months, then years;
 * hours below two days.
 */
export function relativeTime(iso, now = Date.now(), locale = undefined) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  const f = relativeFormat(locale);
  if (abs < MINUTE) return f.format(seconds, 'second');
  if (abs < HOUR) return f.format(Math.round(seconds / MINUTE), 'minute');
  if (abs < 2 * DAY) return f.format(Math.round(seconds / HOUR), 'hour');
  if (abs < 100 * DAY) return f.format(Math.round(seconds / DAY), 'day');
  if (abs < 730 * DAY) return f.format(Math.round(seconds / (30.4375 * DAY)), 'month');
  return f.format(Math.round(seconds / (365.25 * DAY)), 'year');
}

/**
 * What a token row says about its expiry: null when it never expires, else
 * {text: "Expires" | "Expired", relative: "in 29 days" | "2 hours ago", at: iso}.
 */
export function expiryText(token, now = Date.now(), locale = undefined) {
  if (!token.expires_at) return null;
  const at = new Date(token.expires_at).getTime();
  if (Number.isNaN(at)) return null;
  const passed = token.status === 'expired' || at <= now;
  return { text: passed ? 'Expired' : 'Expires', relative: relativeTime(token.expires_at, now, locale), at: token.expires_at };
}

/**
 * What a token row says about its last use: {text: "Never used"} when the API has
 * no last_used_at, else {text: "Last used", relative: "3 minutes ago", at, count}.
 * last_used_at is truncated to the minute, so under a minute reads as such.
 */
export function lastUsedText(token, now = Date.now(), locale = undefined) {
  if (!token.last_used_at) return { text: 'Never used' };
  const at = new Date(token.last_used_at).getTime();
  if (Number.isNaN(at)) return { text: 'Never used' };
  const relative = now - at < MINUTE * 1000 ? 'less than a minute ago' : relativeTime(token.last_used_at, now, locale);
  return { text: 'Last used', relative, at: token.last_used_at, count: token.last_used_count ?? null };
}

/** The expiry presets of the create dialog: value → seconds from now ('' never, 'custom' a date). */
export const EXPIRY_PRESETS = { '': null, '7d': 7 * DAY, '30d': 30 * DAY, '90d': 90 * DAY, '365d': 365 * DAY };

/**
 * The create dialog's expiry: preset one of EXPIRY_PRESETS' keys or 'custom';
 * custom the value of a datetime-local input (local time). Returns
 * {expiresAt: RFC 3339 string or null for never, problem: message or null}.
 */
export function expiryChoice(preset, custom, now = Date.now()) {
  if (preset === 'custom') {
    if (!custom) return { expiresAt: null, problem: 'Choose the date and time when the token expires.' };
    const at = new Date(custom).getTime(); // "YYYY-MM-DDTHH:MM" is local time
    if (Number.isNaN(at)) return { expiresAt: null, problem: 'Choose a valid date and time.' };
    if (at <= now) return { expiresAt: null, problem: 'Choose a time in the future: a token cannot be created already expired.' };
    return { expiresAt: new Date(at).toISOString(), problem: null };
  }
  if (!(preset in EXPIRY_PRESETS)) return { expiresAt: null, problem: 'Choose when the token expires.' };
  const seconds = EXPIRY_PRESETS[preset];
  return { expiresAt: seconds === null ? null : new Date(now + seconds * 1000).toISOString(), problem: null };
}

/** A Date as a datetime-local input's value (local time, minutes). */
export function localInputValue(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}
