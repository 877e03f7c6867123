// Journey tracking end to end (issue 6): a visitor's real browser against the real server,
// the demo shop with the SDK by script tag. What the SDK tracks on its own (page loads,
// SPA navigations, the referrer and campaign) and what the page tracks (Covisit('track'))
// must come out of the journey REST object and, once a co-browse session happened, the
// analytics details, with every seed field (checked against the seed field fixture).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

/** The visitor's journey sessions, once `ready(list)` holds (events arrive batched). */
async function journeys(shortId, ready) {
  let list = [];
  await L.waitFor(async () => {
    const r = await L.rest(server, `/api/v1/journey/sessions?visitor_id=${encodeURIComponent(shortId)}`);
    assert.equal(r.status, 200, r.text);
    list = r.body.sessions;
    return ready(list);
  }, { timeoutMs: 10000, what: 'the journey to show the tracked events' });
  return list;
}

const track = (page, name, attributes) =>
  page.evaluate(([n, a]) => window.Covisit('track', n, a), [name, attributes]);

describe('journey tracking', () => {
  it('a visit from a search engine with a campaign, three page views (one SPA), two events, then a co-browse session', { timeout: 90000 }, async () => {
    const page = await L.openVisitor(browser);
    const landing = `${server.url}/?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale&utm_term=tent&gclid=Cj0KCQiA`;
    await page.goto(landing, { referer: 'https://www.google.com/search?q=ultralight+tent&hl=en' });
    await L.shopLookupCode(page);
    // A page load (an internal link), then an SPA navigation on that page.
    await Promise.all([page.waitForURL('**/product.html?sku=tent'), page.click('a[href="/product.html?sku=tent"]')]);
    const code = await L.shopLookupCode(page);
    const { visitor } = await L.sdkState(page);
    const shortId = visitor.short_id;
    await page.evaluate(() => history.pushState({}, '', '/product.html?sku=tent&tab=reviews'));
    // The same URL again (state only) is no new page view.
    await page.evaluate(() => history.replaceState({ scrolled: true }, '', location.href));
    await track(page, 'add_to_cart', { sku: 'TR-3', price: 249, gift: false, sizes: ['M', 'L'] });
    await track(page, 'wishlist', { sku: 'TR-3' });

    // Bad input to the page's API is an Error with a stable code, and is not tracked.
    const refused = await page.evaluate(() => {
      const errors = [];
      const orig = console.error;
      console.error = (...a) => errors.push(a.join(' '));
      window.Covisit('track', 'no/slashes', {});
      window.Covisit('track', 'nested', { a: { b: 1 } });
      console.error = orig;
      return errors;
    });
    assert.equal(refused.length, 2, `both refused: ${refused}`);
    assert.match(refused[0], /invalid_event_name/);
    assert.match(refused[1], /invalid_attributes/);

    const [tracked] = await journeys(shortId, (l) => l.length === 1 && l[0].pageviewCount === 3 && l[0].eventCount === 5);
    L.checkSeed('JourneySession', tracked);
    assert.equal(tracked.type, 'web');
    assert.equal(tracked.customerId, shortId);
    assert.equal(tracked.customerIdType, 'cookie');
    assert.equal(tracked.screenviewCount, 0);
    assert.equal(tracked.authenticated, false);
    assert.equal(tracked.referrer.medium, 'search');
    assert.equal(tracked.referrer.hostname, 'www.google.com');
    assert.equal(tracked.referrer.keywords, 'ultralight tent');
    assert.ok(tracked.searchTerms.includes('ultralight tent'), JSON.stringify(tracked.searchTerms));
    assert.equal(tracked.mktCampaign.source, 'google');
    assert.equal(tracked.mktCampaign.medium, 'cpc');
    assert.equal(tracked.mktCampaign.name, 'spring_sale');
    assert.equal(tracked.mktCampaign.clickId, 'Cj0KCQiA');
    assert.equal(tracked.lastPage.url, `${server.url}/product.html?sku=tent&tab=reviews`);
    assert.equal(tracked.lastPage.pathname, '/product.html');
    assert.match(tracked.lastPage.title, /Trail Runner/);
    assert.equal(tracked.lastPage.lang, 'en');
    assert.equal(tracked.lastEvent.eventName, 'wishlist');
    assert.deepEqual(tracked.attributes.sku, { dataType: 'string', value: 'TR-3' });
    assert.deepEqual(tracked.attributeLists.sizes, { dataType: 'string', values: ['M', 'L'] });
    assert.equal(tracked.browser.family, 'Chrome');
    assert.equal(tracked.browser.viewWidth, 1280);
    assert.equal(tracked.device.category, 'desktop');
    assert.equal(tracked.ipAddress, '127.0.0.1');
    assert.equal(tracked.conversation, null, 'no co-browse session yet');

    // Identified, then a co-browse session: the journey links to it.
    await page.evaluate(() => window.Covisit('updateVisitor', { uniqueId: 'cust-77' }));
    await L.requestByLookupCode(agent, code, shortId);
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    await L.sdkUi(page, 'indicator').getByRole('button', { name: 'End screen sharing' }).click();
    await L.waitForConsoleStatus(agent, 'ended');
    const [flow] = await L.checkRestObjects(server, shortId);
    const sessionId = flow.session.id;

    const [linked] = await journeys(shortId, (l) => l[0]?.conversation?.id === sessionId && l[0].lastUserDisconnectType !== null);
    L.checkSeed('JourneySession', linked);
    assert.equal(linked.id, tracked.id, 'the same visit, the same journey session');
    assert.equal(linked.authenticated, true);
    assert.equal(linked.lastUserDisconnectType, 'client');
    assert.deepEqual(linked.conversationChannels.map((c) => c.type), ['cobrowse']);
    const one = await L.rest(server, `/api/v1/journey/sessions/${encodeURIComponent(linked.id)}`);
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.body, linked);

    const details = await L.rest(server, `/api/v1/analytics/conversations/${encodeURIComponent(sessionId)}/details`);
    assert.equal(details.status, 200, details.text);
    L.checkSeed('AnalyticsConversation', details.body);
    assert.equal(details.body.conversationId, sessionId);
    const purposes = details.body.participants.map((p) => p.purpose);
    assert.deepEqual(purposes, ['customer', 'agent']);
    const customer = details.body.participants[0].sessions[0];
    assert.equal(customer.mediaType, 'cobrowse');
    assert.equal(customer.cobrowseRole, 'sharer');
    assert.equal(customer.cobrowseRoomId, sessionId);
    assert.equal(customer.journeyCustomerId, shortId);
    assert.equal(customer.journeyCustomerSessionId, linked.id);
    const agentSession = details.body.participants[1].sessions[0];
    assert.equal(agentSession.mediaType, 'cobrowse');
    assert.equal(agentSession.cobrowseRole, 'viewer');
    await page.context().close();
  });

  it('events fired just before leaving for a page without the SDK are not lost', { timeout: 60000 }, async () => {
    const page = await L.openVisitor(browser);
    await page.goto(`${server.url}/checkout.html`);
    await L.shopLookupCode(page);
    const { visitor } = await L.sdkState(page);
    // Fired and gone in the same task: only the pagehide flush can carry them.
    await Promise.all([
      page.waitForURL('**/payment.html'),
      page.evaluate(() => {
        for (let i = 1; i <= 3; i++) window.Covisit('track', `checkout_step_${i}`, { step: i });
        location.href = '/payment.html';
      }),
    ]);
    const [j] = await journeys(visitor.short_id, (l) => l.length === 1 && l[0].eventCount === 4);
    L.checkSeed('JourneySession', j);
    assert.equal(j.pageviewCount, 1);
    assert.equal(j.lastEvent.eventName, 'checkout_step_3');
    assert.deepEqual(j.attributes.step, { dataType: 'integer', value: '3' });
    await page.context().close();
  });

  it('with trackPageViews: false the page records its own page views, and custom events still go', { timeout: 60000 }, async () => {
    const page = await L.openVisitor(browser);
    const config = encodeURIComponent(JSON.stringify({ trackPageViews: false }));
    await page.goto(`${server.url}/fixtures/script-tag.html?config=${config}`, { referer: 'https://news.example.org/story/1' });
    const { visitor } = await L.sdkState(page);
    // Neither the load nor an SPA navigation is a page view on its own now.
    await page.evaluate(() => history.pushState({}, '', location.pathname + '?step=consent'));
    await track(page, 'consented', { analytics: true });
    // The page records the view itself (say, once the visitor agreed to analytics); the
    // same URL twice is one view.
    await page.evaluate(() => { window.Covisit('trackPageView'); window.Covisit('trackPageView'); });
    // Nothing else may still be on its way: a later event goes through the same queue and
    // socket, and once it is recorded every event before it is too.
    await track(page, 'barrier');
    const [j] = await journeys(visitor.short_id, (l) => l.length === 1 && l[0].lastEvent?.eventName === 'barrier');
    L.checkSeed('JourneySession', j);
    assert.equal(j.eventCount, 3, `the two events and the barrier: ${JSON.stringify(j.lastEvent)}`);
    assert.equal(j.pageviewCount, 1);
    assert.equal(j.lastPage.url, `${server.url}/fixtures/script-tag.html?step=consent`);
    assert.equal(j.referrer.hostname, 'news.example.org', 'the first view comes from the document referrer');
    assert.equal(j.referrer.medium, 'referral');
    assert.deepEqual(j.attributes.analytics, { dataType: 'boolean', value: 'true' });
    const v = await L.rest(server, `/api/v1/visitors/${encodeURIComponent(visitor.short_id)}`);
    assert.equal(v.body.js_configuration, true, 'the page changed a default');
    await page.context().close();
  });
});
