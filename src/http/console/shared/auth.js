// The browser session: POST /auth/login gives an access token (kept in memory only) and a refresh token (kept in
// sessionStorage, so a reload of the tab stays logged in; it dies with the tab). The access token is renewed with
// POST /auth/refresh before it expires (refresh tokens rotate on every use), and on a 401. Tokens go only into
// Authorization headers: never into URLs, never into the console log.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function postJson(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), credentials: 'omit' });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, data.error?.code ?? 'HTTP_ERR', data.error?.message ?? `HTTP ${res.status}`);
  return data;
}

/** The claims of a JWT, for display only (the server verifies every token it gets). */
function claimsOf(token) {
  const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
}

export class Session {
  /** @param {string} app a name for the sessionStorage key ('console', 'phone') */
  constructor(app) {
    this.key = `switchboard.${app}.refresh`;
    this.access = null;
    this.claims = null;
    this.timer = null;
    this.refreshing = null;
    this.listeners = new Set();
  }

  /** Called with the new claims whenever the access token changes (null after logout). */
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get token() {
    return this.access;
  }

  async login(username, password) {
    this.set(await postJson('/auth/login', { username, password }));
    return this.claims;
  }

  /** Resumes a session of this tab from its refresh token; false when there is none or it is spent. */
  async resume() {
    if (!sessionStorage.getItem(this.key)) return false;
    try {
      await this.refresh();
      return true;
    } catch {
      this.clear();
      return false;
    }
  }

  /** One refresh at a time: a second caller waits for the first (a refresh token works once). */
  refresh() {
    this.refreshing ??= (async () => {
      try {
        const token = sessionStorage.getItem(this.key);
        if (!token) throw new ApiError(401, 'AUTH_ERR_CREDENTIALS', 'not logged in');
        this.set(await postJson('/auth/refresh', { refresh_token: token }));
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  async logout() {
    const token = sessionStorage.getItem(this.key);
    if (this.access && token) {
      await fetch('/auth/logout', {
        method: 'POST',
        headers: { authorization: `Bearer ${this.access}`, 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: token }),
      }).catch(() => {});
    }
    this.clear();
  }

  set(t) {
    this.access = t.access_token;
    this.claims = claimsOf(t.access_token);
    sessionStorage.setItem(this.key, t.refresh_token);
    clearTimeout(this.timer);
    // Renew at 80% of the lifetime.
    this.timer = setTimeout(() => this.refresh().catch(() => this.clear()), Math.max(5, t.expires_in * 0.8) * 1000);
    for (const fn of this.listeners) fn(this.claims);
  }

  clear() {
    clearTimeout(this.timer);
    this.access = null;
    this.claims = null;
    sessionStorage.removeItem(this.key);
    for (const fn of this.listeners) fn(null);
  }

  /** fetch() with the access token; one refresh and retry on a 401. Returns the parsed JSON (null for 204). */
  async api(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      const headers = { authorization: `Bearer ${this.access}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' });
      if (res.status === 401 && attempt === 0 && sessionStorage.getItem(this.key)) {
        await this.refresh();
        continue;
      }
      if (res.status === 204) return null;
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new ApiError(res.status, data.error?.code ?? 'HTTP_ERR', data.error?.message ?? `HTTP ${res.status}`);
      return data;
    }
  }
}

/**
 * Starts a page: fetches the client configuration, wires the login form to the session, and starts the page
 * (`start(config)`) once signed in, now if a stored session still holds, or after a login.
 */
export async function bootPage(session, start, showLogin) {
  const config = await fetch('/v1/client-config').then((r) => r.json());
  const form = document.querySelector('#login-form');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      await session.login(String(f.get('username')), String(f.get('password')));
      form.reset();
      await start(config);
    } catch (err) {
      document.querySelector('#login-error').textContent = err.message;
    }
  });
  if (await session.resume()) await start(config);
  else showLogin();
}
