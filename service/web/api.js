// The HTTP API of tokenledgerd (docs/api.md), as the Tokens page uses it.
//
// The operator secret lives in sessionStorage (this tab only, gone when the tab
// closes) and in no other place. A token's own secret never passes through this
// module's state: create and rotate hand the response to the caller, which shows
// it once and drops it.

import { userIdProblem } from './rules.js';

const SESSION_KEY = 'tokenledger.session';


/** An error answer of the API ({"error":{"code","message"}}), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The signed-in session, {secret, user}, or null. */
export function loadSession() {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw);
    return typeof s?.secret === 'string' && typeof s?.user === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ secret: session.secret, user: session.user }));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

// A valid user id goes into the path as it is: every character the API allows is
// legal in a path segment. Anything else is percent-encoded (the server decodes
// it), dots too, so that "." and ".." reach the API, which refuses them with its
// own message, instead of being resolved away by the browser.
function userSegment(user) {
  return userIdProblem(user) === null ? user : encodeURIComponent(user).replace(/\./g, '%2E');
}

function tokensPath(user, key, action) {
  let p = `/v1/users/${userSegment(user)}/tokens`;
  if (key !== undefined) p += `/${encodeURIComponent(key)}`;
  if (action !== undefined) p += `/${action}`;
  return p;
}

async function call(session, method, path, body) {
  const headers = { Authorization: `Bearer ${session.secret}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'tokenledgerd did not answer; check that it is running and try again');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = data && typeof data.error === 'object' ? data.error : null;
    throw new ApiError(response.status, e?.code ?? `http_${response.status}`,
                       e?.message ?? `the server answered ${response.status} ${response.statusText}`);
  }
  return data;
}

/** A query string from the defined values of `params`, or ''. */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A client for one user's tokens; every method returns the API's JSON or throws ApiError. */
export function tokenApi(session) {
  const u = session.user;
  return {
    /** One page: params {kind, status, limit, cursor} → {user, tokens, next_cursor}. */
    list: (params) => call(session, 'GET', `${tokensPath(u)}${query(params)}`),
    get: (key) => call(session, 'GET', tokensPath(u, key)),
    create: (description, expiresAt) =>
      call(session, 'POST', tokensPath(u), expiresAt ? { description, expires_at: expiresAt } : { description }),
    activate: (key) => call(session, 'POST', tokensPath(u, key, 'activate'), {}),
    deactivate: (key) => call(session, 'POST', tokensPath(u, key, 'deactivate'), { reason: 'manual' }),
    /** Deactivates every active token (of `kind`, if given); dryRun only counts them. */
    deactivateAll: ({ kind, reason, dryRun }) =>
      call(session, 'POST', `${tokensPath(u)}/deactivate`, { reason, ...(kind ? { kind } : {}), dry_run: Boolean(dryRun) }),
    rotate: (key, graceSeconds) =>
      call(session, 'POST', tokensPath(u, key, 'rotate'), { grace_seconds: graceSeconds }),
    history: (key) => call(session, 'GET', tokensPath(u, key, 'history')),
  };
}
