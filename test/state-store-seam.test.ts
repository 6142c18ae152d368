/**
 * The state-store seam through a real Balancer (in this process, real sockets on
 * loopback): a store opened through the `openStore` hook, as a shared (Redis) store will
 * be, wrapping the file store. What the seam promises the control plane:
 * - changes made elsewhere (onChange) reach the pool: a drain, a backend added or removed,
 *   a weight, all without a restart; partition assignments and learned session ids reach
 *   the router; session ids learned here are published; session counts are published and
 *   the other instances' are summed into status;
 * - the store's health is what /healthz shows, and a store that cannot be reached never
 *   turns /healthz to 503;
 * - while the store cannot take changes, admin changes are refused (503
 *   STATE_UNAVAILABLE) and nothing is applied;
 * - admin changes are written through the store; close() closes it.
 */
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { Balancer } from '../src/balancer.js';
import { parseConfigText } from '../src/config/load.js';
import { openFileStore } from '../src/control/startup.js';
import type { StateHealth } from '../src/pool/readiness.js';
import type { BackendRecords } from '../src/state/backend-records.js';
import type { StateChange, StateStore } from '../src/state/state-store.js';
import { waitFor } from './helpers/lb.js';

const logger = pino({ level: 'silent' });

/** A backend that answers every request 200 with its name. */
async function backend(t: Test, name: string): Promise<string> {
  const server: Server = createServer((req, res) => {
    // A login answers with a new servlet session, as Servoy's Tomcat does.
    if (req.url === '/login') res.setHeader('set-cookie', `JSESSIONID=${name}-session; Path=/`);
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The file store with what a shared store adds: changes announced from elsewhere, a health that can fail. */
class SeamStore implements StateStore {
  readonly kind = 'redis';
  unreachable: string | undefined;
  readonly saved: BackendRecords[] = [];
  closed = false;
  readonly #listeners = new Set<(change: StateChange) => void>();

  constructor(private readonly inner: StateStore) {}

  get cookieSecret() {
    return this.inner.cookieSecret;
  }
  get partitions() {
    return this.inner.partitions;
  }
  backendRecords() {
    return this.inner.backendRecords();
  }
  /** A write that fails although health() said ok (Redis went away in between). */
  failSave: string | undefined;
  async saveBackends(records: BackendRecords) {
    if (this.failSave !== undefined) throw new Error(this.failSave);
    this.saved.push(structuredClone(records));
    await this.inner.saveBackends(records);
  }
  assignPartition(key: string, backend: string, replacing?: string) {
    return this.inner.assignPartition(key, backend, replacing);
  }
  movePartition(key: string, backend: string, drain: boolean) {
    return this.inner.movePartition(key, backend, drain);
  }
  settlePartition(key: string) {
    return this.inner.settlePartition(key);
  }
  readonly learned: [string, string | undefined][] = [];
  readonly published: Record<string, number>[] = [];
  publishSessions(counts: Readonly<Record<string, number>>) {
    this.published.push({ ...counts });
  }
  publishLearned(sessionId: string, backendId: string | undefined) {
    this.learned.push([sessionId, backendId]);
  }
  publishEvent() {}
  /** announce plays a change made elsewhere. */
  announce(change: StateChange) {
    for (const l of this.#listeners) l(change);
  }
  onChange(listener: (change: StateChange) => void) {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
  health(): StateHealth {
    return this.unreachable === undefined ? { kind: 'redis', ok: true } : { kind: 'redis', ok: false, reason: this.unreachable };
  }
  async close() {
    this.closed = true;
    await this.inner.close();
  }
}

t.test('a store plugged in at start: its changes reach the pool, its health reaches /healthz, its outage refuses admin changes', async (t) => {
  const dir = t.testdir();
  const [a, b, c] = [await backend(t, 'a'), await backend(t, 'b'), await backend(t, 'c')];
  const config = parseConfigText(
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      state: { file: join(dir, 'state.json') },
      backends: [
        { id: 'a', url: a },
        { id: 'b', url: b },
      ],
      healthCheck: { path: '/', interval: '1h' },
      affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } },
      log: { access: false },
    }),
    { baseDir: dir },
  );
  let seam: SeamStore | undefined;
  const balancer = await Balancer.start(config, logger, {
    openStore: async (file, cfg, log) => (seam = new SeamStore(await openFileStore(file, cfg, log))),
  });
  t.teardown(() => balancer.close(0));
  const store = seam!;
  const adminApi = async (method: string, path: string, body?: unknown) => {
    const res = await request(`${balancer.adminUrl}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.statusCode, json: (await res.body.json()) as any };
  };

  // Another instance drains a, adds c, removes b and weighs c: the pool follows at once.
  store.announce({ kind: 'backends', records: { added: [{ id: 'c', url: c, weight: 3, route: 'c' }], removed: ['b'], admin: { a: { admin: 'draining', since: 1000 } }, weights: {} } });
  const rows = balancer.backends();
  t.same(
    rows.map((r) => [r.id, r.admin, r.weight, r.source]),
    [
      ['a', 'draining', 1, 'config'],
      ['c', 'ready', 3, 'runtime'],
    ],
    'drained, added, removed and weighed elsewhere: the same here',
  );
  t.equal(rows[0]!.drainingSince, new Date(1000).toISOString(), 'with the clock of the instance that drained it');

  // A partition assigned elsewhere routes here without asking the store.
  await store.assignPartition('acme', 'c');
  store.announce({ kind: 'partition', key: 'acme', record: store.partitions!.get('acme') });
  const routed = await request(`${balancer.url}/`, { headers: { 'x-tenant': 'acme' } });
  t.equal(await routed.body.text(), 'c', 'the router reads the partition from memory');
  const first = await request(`${balancer.url}/`, { headers: { 'x-tenant': 'globex' } });
  const placed = await first.body.text();
  t.equal(store.partitions!.get('globex')?.backend, placed, 'a new tenant: assigned through the store before it was forwarded');

  // A session id learned elsewhere routes here; one learned here is shared.
  // (a is draining: only a session it holds reaches it; a new one goes to c.)
  store.announce({ kind: 'learned', sessionId: 'remote-session', backendId: 'a' });
  const learned = await request(`${balancer.url}/`, { headers: { cookie: 'JSESSIONID=remote-session' } });
  t.equal(await learned.body.text(), 'a', 'a session id another instance learned routes its client to the same server');
  store.announce({ kind: 'learned', sessionId: 'remote-session', backendId: undefined });
  const login = await request(`${balancer.url}/login`, { headers: { cookie: 'JSESSIONID=remote-session' } });
  const server = await login.body.text();
  t.equal(server, 'c', 'forgotten there: placed anew here');
  t.same(store.learned, [['c-session', 'c']], 'and the new session id is shared');

  // Sessions: this instance's are published; the others' are added (status, drains, bounded load).
  await waitFor(() => store.published.length > 0, 5000, 'this instance to publish its session counts');
  t.same(Object.keys(store.published.at(-1)!).sort(), ['a', 'c'], 'per backend of the pool');
  const own = balancer.backends().find((r) => r.id === 'c')!.sessions;
  store.announce({ kind: 'sessions', instance: 'B', counts: { c: 4, a: 1 } });
  t.equal(balancer.backends().find((r) => r.id === 'c')!.sessions, own + 4, 'status sums the instances');
  await waitFor(() => store.published.length > 1, 5000, 'the next publication');
  t.equal(store.published.at(-1)!.c, own, 'what is published is this instance\'s own count, never the sum');
  store.announce({ kind: 'sessions', instance: 'B', counts: {} });
  t.equal(balancer.backends().find((r) => r.id === 'c')!.sessions, own, 'an instance that is gone no longer counts');

  // The store's health is reported, never as a reason for 503.
  t.same((await adminApi('GET', '/healthz')).json.state, { kind: 'redis', ok: true });
  store.unreachable = 'Redis at 127.0.0.1:6379 is unreachable (connect ECONNREFUSED)';
  const healthz = await adminApi('GET', '/healthz');
  t.equal(healthz.status, 200, '/healthz stays 200: both balancers of a pair share the store');
  t.same(healthz.json.state, { kind: 'redis', ok: false, reason: store.unreachable });

  // Admin changes are refused while it cannot take them; nothing is applied.
  const saves = store.saved.length;
  const refused = await adminApi('POST', '/api/backends/c/drain');
  t.equal(refused.status, 503);
  t.match(refused.json, { error: { code: 'STATE_UNAVAILABLE', message: /the shared state cannot take changes now \(Redis at 127\.0\.0\.1:6379 is unreachable/ } });
  t.equal(balancer.backends().find((r) => r.id === 'c')!.admin, 'ready', 'nothing applied');
  t.equal(store.saved.length, saves, 'nothing written');

  // Back: changes go through the store again.
  store.unreachable = undefined;
  t.equal((await adminApi('POST', '/api/backends/c/drain')).status, 200);
  await waitFor(() => store.saved.at(-1)?.admin.c?.admin === 'draining', 5000, 'the drain written through the store');
  t.pass('the drain was written through the store');

  // The store fails the write after health() said ok: the change is live here only, and the answer says so.
  store.failSave = 'shared state unreachable: Redis at 127.0.0.1:6379: connection lost';
  const half = await adminApi('POST', '/api/backends/c/undrain');
  t.equal(half.status, 503);
  t.match(half.json, { error: { code: 'STATE_UNAVAILABLE', message: /^the change is live on this balancer only, the shared state could not take it: shared state unreachable/ } });
  store.failSave = undefined;
  await balancer.close(0);
  t.ok(store.closed, 'close() closes the store');
});
