/**
 * The dashboard in a real browser (SPEC "Dashboard"): Debian's Chromium, driven by
 * playwright-core, against the real CLI (`bin/servoy-lb start`) in front of simulated
 * Servoy servers, as an administrator uses it:
 * - a wrong token says so; the right one shows every backend;
 * - the sessions view lists a session a client made (by its shortened id) and filters by
 *   backend; a drain shows the sessions left, live, and falls to `drained` once the last
 *   client (a WebSocket) has gone and idled out;
 * - disable asks first (Cancel changes nothing), enable too; a weight is set; a backend is
 *   added and takes the next new session; a failed call (a duplicate id) says why on the
 *   page; a drained backend is removed;
 * - the charts have drawn points (coloured pixels on their canvases), the events list the
 *   admin actions, the link to a server's /servoy-admin/ reaches that server;
 * - no console error and no Content-Security-Policy violation all along (the console lines
 *   expected are the browser's own notes of the two failures made on purpose: the wrong
 *   token's 401 and the duplicate id's 409).
 * Each step leaves a screenshot in test/artifacts/ (not committed). Without
 * /usr/bin/chromium the test is skipped, saying so; .ci/run installs it.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { api, browser, config, partitionRows, pinClients, start } from './helpers/admin-env.js';
import { tenantClient } from './helpers/partition.js';
import type { BrowserClient, BrowserSocket } from './helpers/browser.js';
import { backendsFor, repoRoot, startSims } from './helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-browser-token-0123';
const ARTIFACTS = join(repoRoot, 'test', 'artifacts');
const WS_PATH = '/websocket/1/main/1';
/** The series colours of dashboard/dashboard.js (the first few): drawn lines have these pixels. */
const LINE_COLORS = ['#0969da', '#1a7f37', '#bc4c00', '#8250df'];

/** The shortened client id the sessions list shows for a client's affinity cookie. */
function shownId(b: BrowserClient): string {
  const value = b.cookie('SERVOYLB');
  if (value === undefined) throw new Error('the client has no affinity cookie');
  return `${value.split('.')[0]!.slice(0, 6)}…`;
}

const rowOf = (id: string): string => `#backends tr[data-backend="${id}"]`;

/** Waits until the text of `selector` matches `re` (the page refreshes every 2 s). */
async function waitText(page: Page, selector: string, re: RegExp, timeout = 20_000): Promise<void> {
  await page.waitForFunction(
    ([sel, source, flags]) => {
      const node = document.querySelector(sel!);
      return node !== null && new RegExp(source!, flags).test(node.textContent ?? '');
    },
    [selector, re.source, re.flags],
    { timeout },
  );
}

/** The texts of the sessions table's rows, as [client, backend] pairs. */
function sessionRows(page: Page): Promise<string[][]> {
  return page.$$eval('#sessions tbody tr:not(.empty)', (rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent ?? '')));
}

/** What openDashboard gives a test: the browser, its page, and what went wrong in it. */
interface Dashboard {
  context: BrowserContext;
  page: Page;
  /** Console errors so far (takeNote removes expected ones). */
  consoleErrors: ConsoleMessage[];
  pageErrors: string[];
  /** A full-page screenshot in test/artifacts/, numbered in order. */
  screenshot(name: string): Promise<Buffer>;
  /** Asserts exactly one browser note of a failed call (status, path) and takes it out of consoleErrors. */
  takeNote(t: Test, status: number, path: string): void;
  /** Asserts no console error, uncaught exception or CSP violation so far, and no "null" or "NaN" on the page. */
  checkClean(t: Test): Promise<void>;
}

const SKIP = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian's chromium package; .ci/run installs it): the dashboard's browser tests need it`;

/**
 * openDashboard starts Chromium (a fresh profile, closed and removed at teardown) with one
 * page that records console errors, uncaught exceptions and CSP violations; screenshots
 * are named `dashboard-<prefix>-NN-<step>.png`.
 */
async function openDashboard(t: Test, prefix: string): Promise<Dashboard> {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const old of readdirSync(ARTIFACTS)) if (old.startsWith(`dashboard-${prefix}-`)) rmSync(join(ARTIFACTS, old));
  const userDir = mkdtempSync(join(tmpdir(), 'servoy-lb-chromium-'));
  t.teardown(() => rmSync(userDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => context.close());
  context.setDefaultTimeout(20_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors: ConsoleMessage[] = [];
  const pageErrors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  t.teardown(async () => {
    if (!t.passing()) await page.screenshot({ path: join(ARTIFACTS, `dashboard-${prefix}-failed.png`), fullPage: true }).catch(() => undefined);
  });
  let shot = 0;
  return {
    context,
    page,
    consoleErrors,
    pageErrors,
    screenshot: (name) => page.screenshot({ path: join(ARTIFACTS, `dashboard-${prefix}-${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true }),
    // A call a test makes fail on purpose leaves the browser's own note in the console
    // ("Failed to load resource: ... 409"): there must be exactly one.
    takeNote(t, status, path) {
      const notes = consoleErrors.filter((m) => m.text().includes(`status of ${status}`) && new URL(m.location().url).pathname === path);
      t.equal(notes.length, 1, `the browser's note of the ${status} answer to ${path}`);
      consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((m) => !notes.includes(m)));
    },
    async checkClean(t) {
      t.same(consoleErrors.map((m) => `${m.text()} (${m.location().url})`), [], 'no console error (but the notes taken of failures made on purpose)');
      t.same(pageErrors, [], 'no uncaught exception');
      t.notMatch(await page.locator('body').innerText(), /null|undefined|NaN|\[object/, 'no value shown as null, undefined, NaN or [object ...]');
      t.same(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations), [], 'no securitypolicyviolation event');
    },
  };
}

// The two tests mostly wait (for the page's 2 s refresh, for a session to idle out): run side by side.
t.jobs = 2;

t.test('the dashboard in Chromium against the real balancer', { skip: SKIP, buffered: true }, async (t) => {
  const top = t;
  const sims = await startSims(t, ['servoy-a', 'servoy-b', 'servoy-c']);
  const lb = await start(t, config(backendsFor(sims.slice(0, 2)), {
    admin: { token: TOKEN },
    // Sessions idle out after 3 s, so a drain ends within the test.
    affinity: { sessionIdle: '3s' },
    paths: [{ prefix: '/servoy-admin/', allow: ['127.0.0.1'] }],
  }));
  const { context, page, screenshot, takeNote, checkClean } = await openDashboard(t, 'session');
  /** The balancer's own row of backend `id` (GET /api/backends with the token), undefined when absent. */
  const row = async (id: string): Promise<any> => ((await api(lb, 'GET', '/api/backends', { token: TOKEN })).json.backends as any[]).find((b) => b.id === id);

  await t.test('a wrong token gets a clear message', async (t) => {
    await page.goto(`${lb.adminUrl}/`);
    await page.locator('#token').fill('not-the-token');
    await page.locator('#login button[type=submit]').click();
    await waitText(page, '#login-message', /not this balancer/);
    t.equal(await page.locator('#login-message').textContent(), 'That is not this balancer\'s admin token (admin.token in its config file).');
    t.ok(await page.locator('#main').isHidden(), 'nothing else is shown');
    await screenshot('wrong-token');
    takeNote(t, 401, '/login');
  });

  await t.test('signed in, every backend is listed with its state and last check', async (t) => {
    await page.locator('#token').fill(TOKEN);
    await page.locator('#login button[type=submit]').click();
    await page.locator(rowOf('servoy-b')).waitFor();
    t.equal(await page.locator('#backends tbody tr').count(), 2);
    for (const id of ['servoy-a', 'servoy-b']) {
      await waitText(page, `${rowOf(id)} .col-health`, /✓ 200 · \d+ ms/);
      t.equal(await page.locator(`${rowOf(id)} .col-state .state`).textContent(), 'up', `${id} up`);
    }
    t.match(await page.locator('#where').textContent(), `clients connect to ${lb.url} · session mode`);
    t.ok(await page.locator('#logout').isVisible(), 'a sign-out button');
    await screenshot('signed-in');
  });

  let onA: BrowserClient;
  let onB: BrowserClient;
  let socketA: BrowserSocket;
  await t.test('the sessions view lists a session a client made and filters by backend', async (t) => {
    // Closed at the end of the whole test, not of this step: the drain below needs servoy-a's.
    const pinned = await pinClients(top, lb.url, 1, ['servoy-a', 'servoy-b']);
    onA = pinned.get('servoy-a')![0]!;
    onB = pinned.get('servoy-b')![0]!;
    // An open WebSocket keeps a session active (SPEC "Routing rules"): it cannot idle out under the test.
    socketA = await onA.openWebSocket(WS_PATH);
    await onB.openWebSocket(WS_PATH);
    t.match(await page.locator('main h2', { hasText: 'Sessions' }).textContent(), /on this instance/, 'says whose sessions it lists');
    await page.waitForFunction((ids) => ids.every((id) => document.getElementById('sessions')!.textContent!.includes(id)), [shownId(onA), shownId(onB)]);
    t.ok((await sessionRows(page)).some(([client, backend]) => client === shownId(onB) && backend === 'servoy-b'), 'the client on servoy-b, by its shortened id');

    await page.locator('#session-filter').selectOption('servoy-a');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#sessions tbody tr:not(.empty)')];
      return rows.length > 0 && rows.every((r) => r.children[1]?.textContent === 'servoy-a');
    });
    const filtered = await sessionRows(page);
    t.ok(filtered.some(([client]) => client === shownId(onA)), 'servoy-a\'s client is listed');
    t.notOk(filtered.some(([client]) => client === shownId(onB)), 'servoy-b\'s is not');
    await waitText(page, '#session-count', /on servoy-a$/);
    await screenshot('sessions-filtered');
    await page.locator('#session-filter').selectOption('');
  });

  await t.test('the link to a server\'s /servoy-admin/ reaches that server through the balancer', async (t) => {
    const link = page.locator(`${rowOf('servoy-b')} a.admin-link`);
    t.equal(await link.getAttribute('href'), `${lb.url}/servoy-admin/?servoy-lb-backend=servoy-b`);
    const [tab] = await Promise.all([context.waitForEvent('page'), link.click()]);
    await tab.waitForLoadState();
    t.match(await tab.locator('body').textContent(), /server servoy-b/, 'servoy-b answered');
    await tab.close();
  });

  await t.test('drain: the sessions left count live, then drained once the last client idled out', async (t) => {
    await page.locator(`${rowOf('servoy-a')} button[name=drain]`).click();
    await waitText(page, `${rowOf('servoy-a')} .col-state`, /^draining\d+ sessions? left, 1 WebSocket$/);
    t.equal((await row('servoy-a')).state, 'draining');
    await screenshot('draining');
    await socketA.close(); // the last client goes; its session idles out after sessionIdle (3 s)
    await waitText(page, `${rowOf('servoy-a')} .col-state`, /^drained$/);
    t.equal((await row('servoy-a')).state, 'drained');
    t.match(await page.locator(`${rowOf('servoy-a')} .col-sessions`).textContent(), /^0$/);
    await screenshot('drained');
  });

  await t.test('disable asks first; Cancel changes nothing, OK disables', async (t) => {
    const disable = page.locator(`${rowOf('servoy-b')} button[name=disable]`);
    await disable.click();
    await page.locator('#confirm').waitFor();
    t.match(await page.locator('#confirm-text').textContent(), /^Disable servoy-b\? It gets no requests at all: its \d+ sessions? are placed on other servers/);
    await screenshot('disable-confirmation');
    await page.locator('#confirm-cancel').click();
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    t.equal((await row('servoy-b')).admin, 'ready', 'cancelled: still in rotation');
    await disable.click();
    await page.locator('#confirm-ok').click();
    await waitText(page, `${rowOf('servoy-b')} .col-state`, /^disabled$/);
    t.equal((await row('servoy-b')).admin, 'disabled');
    await screenshot('disabled');
  });

  await t.test('add a backend: it takes the next new session; a duplicate id says why', async (t) => {
    const form = page.locator('#add-backend');
    await form.locator('[name=id]').fill('servoy-c');
    await form.locator('[name=url]').fill(sims[2]!.url);
    await form.locator('button[type=submit]').click();
    await page.locator(rowOf('servoy-c')).waitFor();
    t.equal(await form.locator('[name=id]').inputValue(), '', 'the form is cleared');
    // servoy-a is drained and servoy-b disabled: a new session can only go to servoy-c.
    const res = await browser(t, lb.url).get('/api/whoami');
    t.equal(res.json().server, 'servoy-c');
    await waitText(page, `${rowOf('servoy-c')} .col-sessions`, /^[1-9]/);
    await waitText(page, `${rowOf('servoy-c')} .col-backend`, /added at run time/);
    await screenshot('added');

    await form.locator('[name=id]').fill('servoy-c');
    await form.locator('[name=url]').fill(sims[2]!.url);
    await form.locator('button[type=submit]').click();
    await waitText(page, '#problems', /add backend servoy-c.*already exists/);
    t.ok(await page.locator('#problems').isVisible(), 'the failed call is shown with why');
    takeNote(t, 409, '/api/backends');
    await screenshot('add-refused');
    await page.locator('#problems button', { hasText: 'dismiss' }).click();
    t.ok(await page.locator('#problems').isHidden());
  });

  await t.test('a weight is set, enable asks first, a drained backend is removed', async (t) => {
    const weight = page.locator(`${rowOf('servoy-c')} input[name=weight]`);
    await weight.fill('5');
    await page.locator(`${rowOf('servoy-c')} button[name=set]`).click();
    await waitText(page, '#notice', /servoy-c has weight 5/);
    t.equal((await row('servoy-c')).weight, 5, 'PATCH /api/backends/servoy-c');

    await page.locator(`${rowOf('servoy-b')} button[name=enable]`).click();
    t.match(await page.locator('#confirm-text').textContent(), /^Enable servoy-b\?/);
    await page.locator('#confirm-ok').click();
    await waitText(page, `${rowOf('servoy-b')} .col-state`, /^up$/);

    await page.locator(`${rowOf('servoy-a')} button[name=remove]`).click();
    t.equal(await page.locator('#confirm-text').textContent(), 'Remove servoy-a from the pool?');
    await page.locator('#confirm-ok').click();
    await page.locator(rowOf('servoy-a')).waitFor({ state: 'detached' });
    t.equal(await row('servoy-a'), undefined, 'removed from the balancer');
    await screenshot('after-changes');
  });

  await t.test('charts have drawn points; events list the admin actions', async (t) => {
    await page.waitForFunction(() => Number(document.getElementById('chart-sessions')?.dataset.points ?? 0) >= 3);
    for (const chart of ['#chart-sessions', '#chart-rps']) {
      const coloured = await page.$eval(`${chart} canvas`, (canvas, colors) => {
        const rgb = colors.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
        const data = (canvas as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, (canvas as HTMLCanvasElement).width, (canvas as HTMLCanvasElement).height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 3]! > 200 && rgb.some(([r, g, b]) => Math.abs(data[i]! - r!) < 30 && Math.abs(data[i + 1]! - g!) < 30 && Math.abs(data[i + 2]! - b!) < 30)) n++;
        }
        return n;
      }, LINE_COLORS);
      t.ok(coloured > 50, `${chart}: ${coloured} pixels in the series' colours`);
    }
    await waitText(page, '#events', /admin remove by 127\.0\.0\.1/);
    const events = await page.locator('#events').textContent();
    for (const cause of ['admin drain by 127.0.0.1', 'admin disable by 127.0.0.1', 'admin add http://', 'admin weight 5 by 127.0.0.1', 'admin enable by 127.0.0.1']) t.ok(events!.includes(cause), cause);
    t.match(events, /up → draining/, 'state changes with their cause');
    await page.locator('#charts').scrollIntoViewIfNeeded();
    await screenshot('charts-and-events');
  });

  await t.test('sign out', async (t) => {
    await page.locator('#logout').click();
    await page.locator('#login').waitFor();
    t.equal((await api(lb, 'GET', '/api/backends', { token: TOKEN })).status, 200, 'the token still works for the CLI');
  });

  await t.test('no console errors, no CSP violations', (t) => checkClean(t));
});

t.test('partition mode, no token: partitions searched and moved on the page', { skip: SKIP, buffered: true }, async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await start(t, config(backendsFor(sims), {
    affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' }, partitions: { acme: 'servoy-a' } },
  }));
  const { page, screenshot, checkClean } = await openDashboard(t, 'partition');
  for (const tenant of ['acme', 'globex', 'initech']) t.equal((await tenantClient(t, lb.url, tenant).get('/api/whoami')).status, 200, `${tenant} placed`);
  const assigned = async (key: string): Promise<string> => (await partitionRows(lb)).get(key).backend;

  await page.goto(`${lb.adminUrl}/`);
  await page.locator('#partitions-section').waitFor();
  t.ok(await page.locator('#login').isHidden(), 'no token: no sign-in');
  t.ok(await page.locator('#logout').isHidden(), 'and no sign-out');
  await waitText(page, '#where', /partition mode$/);
  await waitText(page, '#partition-count', /^3 partitions$/);
  t.match(await page.locator('#partitions tr[data-key="acme"]').textContent(), /servoy-apinned in the config/, 'a pin is shown as such');
  t.equal(await page.locator('#partitions tr[data-key="acme"] button').count(), 0, 'and cannot be moved here');

  await page.locator('#partition-search').fill('glo');
  await waitText(page, '#partition-count', /^3 partitions, 1 matching$/);
  t.same(await page.$$eval('#partitions tbody tr', (rows) => rows.map((r) => r.getAttribute('data-key'))), ['globex'], 'the search keeps globex');
  await screenshot('search');

  const from = await assigned('globex');
  const to = from === 'servoy-a' ? 'servoy-b' : 'servoy-a';
  await page.locator('#partitions tr[data-key="globex"] button[name=move]').click();
  const form = page.locator('#move-partition');
  t.equal(await form.locator('[name=key]').inputValue(), 'globex', 'move… fills the form');
  await form.locator('[name=backend]').selectOption(to);
  await form.locator('button[type=submit]').click();
  await waitText(page, '#partitions tr[data-key="globex"] td:nth-child(2)', new RegExp(`^${to}$`));
  t.equal(await assigned('globex'), to, `moved from ${from} to ${to} (PUT /api/partitions/globex)`);
  await waitText(page, '#events', new RegExp(`admin move partition globex by 127\\.0\\.0\\.1`));
  await screenshot('moved');
  await checkClean(t);
});
