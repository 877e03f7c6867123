// The console's admin pages: users (invite, role, disable, reset link), keys (public
// keys with their allowed origins; a new key's secret is shown once), the account's
// settings (where personal links send visitors) and the audit log (admins and
// supervisors). Plain DOM, no framework; everything goes through the REST API with the
// console's sign-in (console.js hands over `api`, which adds the CSRF token).
// @ts-check

/**
 * What console.js hands over.
 * @typedef {object} AdminDeps
 * @property {(path: string, options?: { method?: string, body?: unknown }) => Promise<any>} api
 *   REST with the console's sign-in; throws an Error with the server's `code`
 * @property {<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Record<string, any> | null, ...children: any[]) => HTMLElementTagNameMap[K]} h
 *   an element with properties or attributes and children
 * @property {(text: string) => void} announce read out to screen readers
 * @property {(code: string, message: string) => void} showError
 * @property {(iso: string | null | undefined) => string} fmtTime
 * @property {HTMLElement} main where the admin pages go
 * @property {HTMLElement} nav their links
 */
/** @typedef {'users' | 'keys' | 'settings' | 'audit'} Page */
/** `GET /api/v1/me` (server/src/rest_admin.rs): what decides the pages. */
/** @typedef {{ permissions?: { administer?: boolean, read_audit?: boolean } }} Me */
/** @typedef {{ id: string, name: string, email: string, role: string, disabled: boolean, status: string, personal_link: string }} User */
/** @typedef {{ public_key: string, name: string | null, origins: string[] | null, allow_loopback: boolean, revoked_at: string | null }} Key */
/** @typedef {{ at: string, actor: string, action: string, target: string | null, ip: string | null, result: string }} AuditEntry */

const ROLES = [
  ['agent', 'Agent — co-browses'],
  ['supervisor', 'Supervisor — joins any session, reads the audit log'],
  ['admin', 'Admin — also manages users, keys and settings'],
];

export class Admin {
  /** @param {AdminDeps} deps */
  constructor({ api, h, announce, showError, fmtTime, main, nav }) {
    this.api = api;
    this.h = h;
    this.announce = announce;
    this.showError = showError;
    this.fmtTime = fmtTime;
    this.main = main;
    this.nav = nav;
    /** @type {Me | null} */
    this.me = null;
    /** @type {Page | null} */
    this.page = null;
    /** @type {number | null} */
    this.auditBefore = null;
  }

  /** The signed-in user (`/api/v1/me`), or null: decides which pages exist.
   * @param {Me | null} me */
  setUser(me) {
    this.me = me;
    const { h } = this;
    const p = me?.permissions || {};
    /** @type {[string, string, string][]} */
    const links = [];
    if (p.administer) {
      links.push(['#/admin/users', 'Users', 'nav-users'], ['#/admin/keys', 'Keys', 'nav-keys'], ['#/admin/settings', 'Settings', 'nav-settings']);
    }
    if (p.read_audit) links.push(['#/audit', 'Audit log', 'nav-audit']);
    if (links.length) links.unshift(['#/', 'Visitors', 'nav-visitors']);
    this.nav.replaceChildren(...links.map(([href, text, id]) => h('a', { href, text, class: 'admin-link', 'data-testid': id })));
    this.show(null);
    this.nav.hidden = links.length === 0;
  }

  hide() {
    this.page = null;
    this.main.hidden = true;
    for (const a of this.nav.querySelectorAll('a')) a.removeAttribute('aria-current');
  }

  /** Renders an admin page (`users`, `keys`, `settings`, `audit`); null hides.
   * @param {Page | null} page */
  show(page) {
    if (!page) return this.hide();
    const p = this.me?.permissions || {};
    const allowed = page === 'audit' ? p.read_audit : p.administer;
    for (const a of this.nav.querySelectorAll('a')) {
      if ((a.getAttribute('href') || '').endsWith(page === 'audit' ? '/audit' : `/admin/${page}`)) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    this.main.hidden = false;
    if (this.page === page) return;
    this.page = page;
    if (!allowed) {
      this.main.replaceChildren(this.title('Not available'), this.h('p', { class: 'muted', text: 'Your role does not include this page.' }));
      return;
    }
    this.main.replaceChildren(this.title({ users: 'Users', keys: 'Keys', settings: 'Settings', audit: 'Audit log' }[page]));
    ({ users: () => this.users(), keys: () => this.keys(), settings: () => this.settings(), audit: () => this.audit() })[page]();
  }

  /** @param {string} text */
  title(text) {
    return this.h('h2', { id: 'admin-title', tabIndex: -1, text });
  }

  /** @param {string} label @param {HTMLElement} input @param {string} [hint] */
  field(label, input, hint) {
    const { h } = this;
    const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
    input.id = id;
    return h('div', { class: 'field' }, h('label', { htmlFor: id, text: label }), input, hint ? h('p', { class: 'hint', text: hint }) : null);
  }

  /** A one-time value shown once (invite link, secret key), with a copy button.
   * @param {string} label @param {string} value @param {string} testid */
  once(label, value, testid) {
    const { h } = this;
    const input = h('input', { type: 'text', readOnly: true, value, class: 'mono', 'data-testid': testid });
    const copy = h('button', { type: 'button', class: 'btn btn-small', text: 'Copy' });
    copy.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(value); this.announce('Copied.'); } catch { input.select(); }
    });
    return h('div', { class: 'once', role: 'status' }, this.field(label, input, 'Shown this once: copy it now.'), copy);
  }

  /** @param {any} e what `api` threw */
  fail(e) {
    this.showError(e.code, e.message);
  }

  // ----- users ---------------------------------------------------------------------------

  async users() {
    const { h } = this;
    const email = h('input', { type: 'email', required: true, maxLength: 254, 'data-testid': 'invite-email', autocomplete: 'off' });
    const name = h('input', { type: 'text', required: true, maxLength: 200, 'data-testid': 'invite-name', autocomplete: 'off' });
    const role = h('select', { 'data-testid': 'invite-role' }, ...ROLES.map(([v, t]) => h('option', { value: v, text: t })));
    const result = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card admin-form', noValidate: true, 'aria-labelledby': 'invite-title' },
      h('h3', { id: 'invite-title', text: 'Invite someone' }),
      this.field('Email', email), this.field('Name (visitors see it)', name), this.field('Role', role),
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Create invite link', 'data-testid': 'invite-submit' }),
      result);
    const list = h('div', { class: 'table-wrap' });
    this.main.append(form, h('section', { class: 'card', 'aria-labelledby': 'users-title' }, h('h3', { id: 'users-title', text: 'People' }), list));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await this.api('/api/v1/users', { method: 'POST', body: { email: email.value.trim(), name: name.value.trim(), role: role.value } });
        result.replaceChildren(this.once(`Invite link for ${r.user.email} (valid until ${this.fmtTime(r.expires_at)})`, r.invite_url, 'invite-link'));
        email.value = '';
        name.value = '';
        this.announce(`Invite link created for ${r.user.email}.`);
        this.userList(list, result);
      } catch (e) { this.fail(e); }
    });
    this.userList(list, result);
  }

  /** @param {HTMLElement} list @param {HTMLElement} result */
  async userList(list, result) {
    const { h } = this;
    /** @type {User[]} */
    let users;
    try { users = (await this.api('/api/v1/users')).users; } catch (e) { return this.fail(e); }
    const rows = users.map((u) => {
      const role = h('select', { 'aria-label': `Role of ${u.name}`, 'data-testid': 'user-role' }, ...ROLES.map(([v, t]) => h('option', { value: v, text: t.split(' — ')[0], selected: v === u.role })));
      role.addEventListener('change', async () => {
        try { await this.api(`/api/v1/users/${encodeURIComponent(u.id)}`, { method: 'PATCH', body: { role: role.value } }); this.announce(`${u.name} is now ${role.value}.`); } catch (e) { role.value = u.role; this.fail(e); }
      });
      const toggle = h('button', { type: 'button', class: 'btn btn-small', text: u.disabled ? 'Enable' : 'Disable', 'data-testid': 'user-toggle' });
      toggle.addEventListener('click', async () => {
        try { await this.api(`/api/v1/users/${encodeURIComponent(u.id)}`, { method: 'PATCH', body: { disabled: !u.disabled } }); this.announce(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`); this.userList(list, result); } catch (e) { this.fail(e); }
      });
      const reset = h('button', { type: 'button', class: 'btn btn-small', text: u.status === 'invited' ? 'New invite link' : 'Password reset link', 'data-testid': 'user-reset' });
      reset.addEventListener('click', async () => {
        try {
          const r = await this.api(`/api/v1/users/${encodeURIComponent(u.id)}/password_reset`, { method: 'POST' });
          result.replaceChildren(this.once(`${r.kind === 'reset' ? 'Password reset' : 'Invite'} link for ${u.email} (valid until ${this.fmtTime(r.expires_at)})`, r.url, 'reset-link'));
        } catch (e) { this.fail(e); }
      });
      const status = u.disabled ? 'disabled' : u.status;
      return h('tr', { 'data-testid': 'user-row', 'data-email': u.email },
        h('td', {}, h('strong', { text: u.name }), h('br'), h('span', { class: 'muted small', text: u.email })),
        h('td', {}, role),
        h('td', {}, h('span', { class: 'status-pill status-small', 'data-status': status, text: status })),
        h('td', { class: 'mono small', text: u.personal_link }),
        h('td', { class: 'row-actions' }, toggle, reset));
    });
    list.replaceChildren(h('table', { class: 'history' },
      h('thead', {}, h('tr', {}, ...['Person', 'Role', 'Status', 'Personal link', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, ...rows)));
  }

  // ----- keys ----------------------------------------------------------------------------

  async keys() {
    const { h } = this;
    const name = h('input', { type: 'text', required: true, maxLength: 200, 'data-testid': 'key-name' });
    const origins = h('textarea', { rows: 3, 'data-testid': 'key-origins', placeholder: 'https://shop.example\nhttps://*.shop.example' });
    const result = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card admin-form', noValidate: true, 'aria-labelledby': 'key-title' },
      h('h3', { id: 'key-title', text: 'New key pair' }),
      this.field('Name', name),
      this.field('Allowed origins (one per line)', origins, 'Pages of these origins may use the public key: https://shop.example, or https://*.shop.example for its subdomains.'),
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Create keys', 'data-testid': 'key-submit' }), result);
    const list = h('div', { class: 'table-wrap' });
    this.main.append(form, h('section', { class: 'card', 'aria-labelledby': 'keys-title' }, h('h3', { id: 'keys-title', text: 'Keys' }), list));
    /** @param {string} t */
    const lines = (t) => t.split(/\s+/).map((x) => x.trim()).filter(Boolean);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const r = await this.api('/api/v1/keys', { method: 'POST', body: { name: name.value.trim(), origins: lines(origins.value) } });
        result.replaceChildren(this.once('Public key (for the SDK)', r.public_key, 'new-public-key'), this.once('Secret key (for REST and integrations)', r.secret_key, 'new-secret-key'));
        name.value = '';
        origins.value = '';
        this.keyList(list, lines);
      } catch (e) { this.fail(e); }
    });
    this.keyList(list, lines);
  }

  /** @param {HTMLElement} list @param {(text: string) => string[]} lines */
  async keyList(list, lines) {
    const { h } = this;
    /** @type {Key[]} */
    let keys;
    try { keys = (await this.api('/api/v1/keys')).keys; } catch (e) { return this.fail(e); }
    list.replaceChildren(...keys.map((k) => {
      const origins = h('textarea', { rows: 2, 'aria-label': `Allowed origins of ${k.public_key}`, 'data-testid': 'key-origins-edit' });
      origins.value = (k.origins || []).join('\n');
      const save = h('button', { type: 'button', class: 'btn btn-small', text: 'Save origins' });
      save.addEventListener('click', async () => {
        try { await this.api(`/api/v1/keys/${encodeURIComponent(k.public_key)}`, { method: 'PATCH', body: { origins: lines(origins.value) } }); this.announce('Origins saved.'); } catch (e) { this.fail(e); }
      });
      const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger', text: 'Revoke' });
      revoke.addEventListener('click', async () => {
        if (!confirm(`Revoke ${k.public_key}? Pages and integrations using it stop working.`)) return;
        try { await this.api(`/api/v1/keys/${encodeURIComponent(k.public_key)}/revoke`, { method: 'POST' }); this.keyList(list, lines); } catch (e) { this.fail(e); }
      });
      const revoked = Boolean(k.revoked_at);
      return h('section', { class: 'key-card', 'data-testid': 'key-row', 'data-key': k.public_key },
        h('h4', {}, h('code', { text: k.public_key }), ` ${k.name || ''}`, revoked ? h('span', { class: 'status-pill status-small', 'data-status': 'ended', text: 'revoked' }) : null),
        k.origins === null ? h('p', { class: 'form-problem', text: 'This key has no allowed origins (made before keys had them): any page may use it. Set its origins.' }) : null,
        k.allow_loopback ? h('p', { class: 'muted small', text: 'Demo key: pages on this machine (loopback) may use it too.' }) : null,
        revoked ? null : this.field('Allowed origins', origins), revoked ? null : h('div', { class: 'actions' }, save, revoke));
    }));
  }

  // ----- settings ------------------------------------------------------------------------

  async settings() {
    const { h } = this;
    const site = h('input', { type: 'url', maxLength: 2048, 'data-testid': 'site-url', placeholder: 'https://shop.example/' });
    const form = h('form', { class: 'card admin-form', noValidate: true, 'aria-labelledby': 'site-title' },
      h('h3', { id: 'site-title', text: 'Personal links' }),
      this.field('Website address', site, 'Where a visitor goes after confirming an agent\'s personal link (the page must load covisit).'),
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save', 'data-testid': 'site-save' }));
    const record = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'data-testid': 'record-sessions' }));
    const retention = h('p', { class: 'muted small', 'data-testid': 'recording-retention' });
    const recForm = h('form', { class: 'card admin-form', noValidate: true, 'aria-labelledby': 'recording-title' },
      h('h3', { id: 'recording-title', text: 'Session recordings' }),
      h('label', { class: 'check' }, record, ' Record co-browsing sessions'),
      h('p', { class: 'muted small', text: 'The server keeps what the agents saw, with its times; masked fields never leave the visitor\'s page, so they are never in a recording. Visitors are told in the prompt that the session is recorded.' }),
      retention,
      h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save', 'data-testid': 'recording-save' }));
    this.main.append(form, recForm);
    try {
      const account = await this.api('/api/v1/account');
      site.value = account.site_url || '';
      record.checked = Boolean(account.record_sessions);
      retention.textContent = `Recordings are deleted ${Number(account.recording_retention_days)} days after their session ended.`;
    } catch (e) { this.fail(e); }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { await this.api('/api/v1/account', { method: 'PATCH', body: { site_url: site.value.trim() || null } }); this.announce('Saved.'); } catch (e) { this.fail(e); }
    });
    recForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { await this.api('/api/v1/account', { method: 'PATCH', body: { record_sessions: record.checked } }); this.announce('Saved.'); } catch (e) { this.fail(e); }
    });
  }

  // ----- the audit log -------------------------------------------------------------------

  audit() {
    const { h } = this;
    const actor = h('input', { type: 'text', 'data-testid': 'audit-actor', placeholder: 'u_…, ea_…, visitor:…, system' });
    const action = h('input', { type: 'text', 'data-testid': 'audit-action', placeholder: 'e.g. session.authorized' });
    const body = h('tbody', { 'data-testid': 'audit-body' });
    const more = h('button', { type: 'button', class: 'btn', text: 'Older entries', hidden: true, 'data-testid': 'audit-more' });
    const form = h('form', { class: 'filters', noValidate: true, role: 'search', 'aria-label': 'Filter the audit log' },
      this.field('Actor', actor), this.field('Action', action),
      h('button', { type: 'submit', class: 'btn', text: 'Filter', 'data-testid': 'audit-filter' }));
    this.main.append(form, h('div', { class: 'table-wrap' }, h('table', { class: 'history audit' },
      h('caption', { class: 'visually-hidden', text: 'Audit log, newest first' }),
      h('thead', {}, h('tr', {}, ...['Time', 'Actor', 'Action', 'Target', 'IP', 'Result'].map((t) => h('th', { scope: 'col', text: t })))),
      body)), more);
    /** @param {boolean} append older entries below the ones shown */
    const load = async (append) => {
      const q = new URLSearchParams({ limit: '100' });
      if (actor.value.trim()) q.set('actor', actor.value.trim());
      if (action.value.trim()) q.set('action', action.value.trim());
      if (append && this.auditBefore) q.set('before', String(this.auditBefore));
      try {
        /** @type {{ entries: AuditEntry[], next_before: number | null }} */
        const r = await this.api(`/api/v1/audit?${q}`);
        const rows = r.entries.map((e) => h('tr', { 'data-testid': 'audit-row', 'data-action': e.action, 'data-actor': e.actor },
          h('td', {}, h('time', { datetime: e.at, title: e.at, text: this.fmtTime(e.at) })),
          h('td', { class: 'mono small', text: e.actor }), h('td', { text: e.action }),
          h('td', { class: 'mono small', text: e.target || '—' }), h('td', { class: 'mono small', text: e.ip || '—' }),
          h('td', { text: e.result })));
        if (append) body.append(...rows);
        else body.replaceChildren(...rows);
        this.auditBefore = r.next_before;
        more.hidden = !r.next_before;
        if (!append) this.announce(`${r.entries.length} audit entries.`);
      } catch (e) { this.fail(e); }
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(false); });
    more.addEventListener('click', () => load(true));
    load(false);
  }
}
