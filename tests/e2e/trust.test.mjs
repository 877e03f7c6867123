// Accounts, people and trust, end to end in Chromium against the real server: an admin
// signs in, invites an agent (the one-time link is shown once), the agent chooses a
// password from the link, signs in and co-browses with a visitor of the demo shop, and
// the admin reads those steps in the audit view. Also: the SDK keeps the visitor's
// secret and comes back as the same visitor, refuses a page of an origin its key does
// not allow (an `error` event with a stable code), and an agent's personal link brings a
// visitor to that agent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as L from './lib.mjs';

let server;
let browser;

L.useServerAndBrowser((env) => ({ server, browser } = env));

async function consolePage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.errors = errors;
  await page.goto(`${server.url}/agent/`);
  return page;
}

describe('accounts and the audit log', () => {
  it('an admin invites an agent, the agent sets a password and co-browses, the admin sees it in the audit view', { timeout: 120000 }, async () => {
    const admin = await consolePage();
    await L.signInConsole(admin, L.DEMO_ADMIN.email, L.DEMO_ADMIN.password);
    // The admin's pages.
    await admin.getByTestId('nav-users').click();
    await admin.getByTestId('invite-email').fill('riley.agent@demo.test');
    await admin.getByTestId('invite-name').fill('Riley Agent');
    await admin.getByTestId('invite-role').selectOption('agent');
    await admin.getByTestId('invite-submit').click();
    const link = await admin.getByTestId('invite-link').inputValue();
    assert.match(link, new RegExp(`^${server.url}/agent/#/invite/[0-9a-f]{64}$`));
    await admin.locator('[data-testid="user-row"][data-email="riley.agent@demo.test"]').waitFor();

    // The agent opens the link in a browser of its own and chooses a password.
    const agent = await consolePage();
    await agent.goto(link);
    await agent.getByTestId('password-input').fill('short');
    await agent.getByTestId('password-repeat').fill('short');
    await agent.getByTestId('password-submit').click();
    await agent.getByTestId('password-problem').waitFor();
    await agent.getByTestId('password-input').fill('riley picks a long pass phrase');
    await agent.getByTestId('password-repeat').fill('riley picks a long pass phrase');
    await agent.getByTestId('password-submit').click();
    await agent.getByTestId('visitor-search').waitFor({ state: 'visible' });
    assert.equal(new URL(agent.url()).hash, '', 'the one-time token left the address bar');
    assert.equal(await agent.getByTestId('nav-users').count(), 0, 'an agent has no admin pages');
    // The cookie is HttpOnly: the console's script never sees it.
    assert.equal(await agent.evaluate(() => document.cookie), '');
    // Signing out and in again with the password.
    await agent.getByTestId('signout').click();
    await agent.getByTestId('signin-email').fill('riley.agent@demo.test');
    await agent.getByTestId('signin-password').fill('not the password');
    await agent.getByTestId('signin-submit').click();
    await L.waitFor(async () => /Wrong email or password/.test(await agent.getByTestId('signin-problem').textContent()), { what: 'the refusal' });
    await L.signInConsole(agent, 'riley.agent@demo.test', 'riley picks a long pass phrase');

    // Co-browsing with a visitor of the demo shop.
    const visitor = await L.openVisitor(browser, `${server.url}/product.html`);
    const { code, shortId } = await (async () => {
      const c = await L.shopLookupCode(visitor);
      return { code: c, shortId: (await L.sdkState(visitor)).visitor.short_id };
    })();
    await L.requestByLookupCode(agent, code, shortId);
    const prompt = L.sdkUi(visitor, 'session-prompt');
    await prompt.waitFor();
    assert.match(await prompt.textContent(), /Riley Agent/);
    await prompt.getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    await agent.getByTestId('end-session').click();
    await L.waitForConsoleStatus(agent, 'ended');

    // The admin's audit view shows who did what.
    await admin.getByTestId('nav-audit').click();
    const rows = admin.locator('[data-testid="audit-row"]');
    await rows.first().waitFor();
    const seen = async () => rows.evaluateAll((trs) => trs.map((tr) => `${tr.dataset.actor} ${tr.dataset.action}`));
    const riley = (await L.asUser(server, await L.signIn(server, 'riley.agent@demo.test', 'riley picks a long pass phrase'), '/api/v1/me')).body.user.id;
    await L.waitFor(async () => {
      await admin.getByTestId('audit-filter').click();
      const all = await seen();
      return ['user.invited', 'user.invite_accepted', 'auth.sign_in', 'session.requested', 'session.ended'].every((a) => all.some((x) => x.endsWith(a)))
        && all.includes(`visitor:${shortId} session.authorized`) && all.includes(`${riley} session.requested`) && all;
    }, { what: 'the steps in the audit view' });
    // Filtered by the agent.
    await admin.getByTestId('audit-actor').fill(riley);
    await admin.getByTestId('audit-filter').click();
    await L.waitFor(async () => (await seen()).every((x) => x.startsWith(riley)), { what: 'only the agent\'s entries' });
    assert.deepEqual([...admin.errors, ...agent.errors], []);
    for (const p of [admin, agent, visitor]) await p.context().close();
  });

  it('the visitor keeps its secret: a reload is the same visitor, another browser that names its id is not', { timeout: 60000 }, async () => {
    const page = await L.openVisitor(browser, `${server.url}/`);
    await L.waitFor(async () => (await L.sdkState(page)).visitor?.short_id, { what: 'ready' });
    const shortId = (await L.sdkState(page)).visitor.short_id;
    const secret = await page.evaluate(() => localStorage.getItem('covisit.visitor_secret'));
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(await L.sdkState(page)).includes(secret), 'the secret is not in the state the page reads');
    await page.reload();
    await L.waitFor(async () => (await L.sdkState(page)).visitor?.short_id === shortId, { what: 'the same visitor after a reload' });
    // Another browser that copies only the id becomes a visitor of its own.
    const other = await L.openVisitor(browser);
    await other.goto(`${server.url}/favicon.svg`);
    await other.evaluate((id) => localStorage.setItem('covisit.short_id', id), shortId);
    await other.goto(`${server.url}/`);
    await L.waitFor(async () => (await L.sdkState(other)).visitor?.short_id, { what: 'ready' });
    assert.notEqual((await L.sdkState(other)).visitor.short_id, shortId);
    await page.context().close();
    await other.context().close();
  });

  it('a page of an origin the key does not allow gets an error event with origin_not_allowed, and nothing is created', { timeout: 60000 }, async () => {
    const out = execFileSync(L.SERVER_BIN, ['--database', join(server.dir, 'covisit.db'), 'keys', 'create', '--name', 'elsewhere', '--origin', 'https://shop.example'], { encoding: 'utf8' });
    const pk = out.match(/public key: (\S+)/)[1];
    const config = encodeURIComponent(JSON.stringify({ apiKey: pk }));
    const page = await L.openVisitor(browser);
    const frames = await L.captureFrames(page);
    await page.goto(`${server.url}/fixtures/script-tag.html?config=${config}`);
    const error = await L.waitFor(() => page.evaluate(() => window.covisitEvents.find((e) => e.name === 'error')), { what: 'the error event' });
    assert.equal(error.detail.code, 'origin_not_allowed');
    // The ES module's start() rejects with the same code.
    const rejected = await page.evaluate(async (key) => {
      const { start } = await import('/sdk/index.js');
      try { await start({ apiKey: key, server: location.origin }); return null; } catch (e) { return e.code; }
    }, pk);
    assert.equal(rejected, 'origin_not_allowed');
    assert.ok(!frames.received.some((f) => f.type === 'welcome'), 'no welcome');
    await page.context().close();
  });

  it("an agent's personal link: the visitor confirms, lands on the site, and that agent asks for a session", { timeout: 60000 }, async () => {
    const who = await L.createUser(server, 'Pia Link', 'agent');
    const agent = await consolePage();
    await L.signInConsole(agent, who.email, who.password);
    const link = await agent.getByTestId('personal-link').getAttribute('href');
    assert.equal(link, `${server.url}/call/${who.user.username}`);
    const visitor = await L.openVisitor(browser, link);
    assert.match(await visitor.locator('h1').textContent(), /Pia Link/);
    await visitor.getByRole('button', { name: 'Continue to the website' }).click();
    const prompt = L.sdkUi(visitor, 'session-prompt');
    await prompt.waitFor({ timeout: 15000 });
    assert.match(await prompt.textContent(), /Pia Link/);
    assert.ok(!visitor.url().includes('covisit_call'), 'the token left the address bar');
    await prompt.getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    const shortId = (await L.sdkState(visitor)).visitor.short_id;
    const sessions = await L.rest(server, `/api/v1/sessions?visitor_id=${shortId}`);
    assert.equal(sessions.body.sessions[0].source, 'personal link');
    assert.equal(sessions.body.sessions[0].call_name, who.user.username);
    await L.endLiveSessions(server, shortId);
    await visitor.context().close();
    await agent.context().close();
  });
});
