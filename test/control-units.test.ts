/**
 * The control plane's parts on their own (src/control/): a real Pool, a state store that
 * records what it is asked (and can fail, or announce changes made "elsewhere"), no
 * sockets. The integration tests (admin-*, partition-*, failover-delay, workers) prove
 * the wiring; these cover the branches those cannot reach, such as a store that fails or
 * another instance's changes.
 */
import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { AdminError } from '../src/admin/control.js';
import type { BalancerMetrics } from '../src/admin/metrics.js';
import type { BackendConfig } from '../src/config/schema.js';
import { BackendAdmin } from '../src/control/backend-admin.js';
import { FleetHostAdapter } from '../src/control/fleet-host.js';
import { InstanceLoad, withOtherInstances } from '../src/control/instance-load.js';
import { MaintenanceBackoff } from '../src/control/maintenance-backoff.js';
import { OutcomeRecorder } from '../src/control/outcome-recorder.js';
import { PartitionAdmin, type PartitionAdminDeps } from '../src/control/partition-admin.js';
import { readReload } from '../src/control/reloader.js';
import { parseConfigText } from '../src/config/load.js';
import type { OutlierDetector } from '../src/health/outlier-detector.js';
import { Pool } from '../src/pool/pool.js';
import { SessionAccounting } from '../src/sessions/accounting.js';
import type { StateHealth } from '../src/pool/readiness.js';
import type { PartitionLookup } from '../src/routing/types.js';
import { emptyRecords, type BackendRecords } from '../src/state/backend-records.js';
import { PartitionDirectory } from '../src/state/partition-directory.js';
import type { PartitionRecord } from '../src/state/partition-store.js';
import type { AssignResult, PartitionTable, PartitionWriter, StateChange } from '../src/state/state-store.js';

const logger = pino({ level: 'silent' });

function backend(id: string, weight = 1): BackendConfig {
  return { id, url: 'http://127.0.0.1:1', weight, route: id };
}

/** A store of backend records that keeps what it was given, and fails when told to. */
function recordStore() {
  const saved: BackendRecords[] = [];
  return {
    saved,
    fail: false,
    reachable: true,
    kind: 'redis' as StateHealth['kind'],
    health(): StateHealth {
      return this.reachable ? { kind: this.kind, ok: true } : { kind: this.kind, ok: false, reason: 'Redis at 127.0.0.1:6379 is unreachable' };
    },
    async saveBackends(records: BackendRecords): Promise<void> {
      if (this.fail) throw new Error('disk full');
      saved.push(structuredClone(records));
    },
  };
}

function backendAdmin(configBackends: BackendConfig[], records: BackendRecords = emptyRecords()) {
  const pool = new Pool(configBackends);
  const store = recordStore();
  const calls: string[] = [];
  const admin = new BackendAdmin(
    pool,
    store,
    {
      logger,
      configBackends: () => configBackends,
      forget: (id) => calls.push(`forget ${id}`),
      closeTunnels: (id) => calls.push(`close ${id}`),
      adminStateChanged: () => calls.push('admin changed'),
    },
    { records, source: new Map(configBackends.map((b) => [b.id, 'config' as const])) },
  );
  return { pool, store, calls, admin };
}

t.test('backend admin: each change is live at once, then persisted as records', async (t) => {
  const { pool, store, calls, admin } = backendAdmin([backend('a'), backend('b', 2)]);
  await admin.add({ id: 'c', url: 'http://127.0.0.1:9' });
  t.ok(pool.has('c'));
  t.equal(admin.sourceOf('c'), 'runtime');
  t.equal(admin.sourceOf('a'), 'config');
  t.same(store.saved.at(-1)!.added.map((b) => b.id), ['c']);
  await t.rejects(admin.add({ id: 'c', url: 'http://127.0.0.1:9' }), { code: 'BACKEND_EXISTS' });
  await t.rejects(admin.add({ id: 'd', url: 'http://127.0.0.1:9', route: 'a' }), { code: 'BACKEND_EXISTS', message: /already uses route "a"/ });
  await t.rejects(admin.add({ id: 'd', url: 'ftp://x' }), { code: 'INVALID_BODY', message: /^invalid backend: url/ });

  await admin.setWeight('b', 5);
  t.same(store.saved.at(-1)!.weights, { b: 5 }, 'a config backend: a weight record');
  await admin.setWeight('b', 2);
  t.same(store.saved.at(-1)!.weights, {}, 'the file says the same weight: the record is retired');
  await admin.setWeight('c', 7);
  t.equal(store.saved.at(-1)!.added[0]!.weight, 7, 'a run-time backend: its recorded addition changes');
  await t.rejects(admin.setWeight('c', 0), { code: 'INVALID_BODY' });
  await t.rejects(admin.setWeight('zz', 1), { code: 'UNKNOWN_BACKEND' });

  await admin.setAdminState('a', 'drain');
  t.equal(pool.member('a')!.admin, 'draining');
  t.equal(store.saved.at(-1)!.admin.a!.admin, 'draining');
  t.type(store.saved.at(-1)!.admin.a!.since, 'number', 'draining keeps its clock');
  await admin.setAdminState('a', 'enable');
  t.equal(pool.member('a')!.admin, 'draining', 'enable undoes only disable');
  await admin.setAdminState('a', 'undrain');
  t.same(store.saved.at(-1)!.admin, {}, 'ready is never stored');
  await admin.setAdminState('b', 'disable', { close: true });
  t.same(store.saved.at(-1)!.admin, { b: { admin: 'disabled' } });
  await admin.setAdminState('b', 'undrain');
  t.equal(pool.member('b')!.admin, 'disabled', 'undrain undoes only drain');
  await admin.setAdminState('b', 'enable');
  t.equal(pool.member('b')!.admin, 'ready');
  await t.rejects(admin.setAdminState('zz', 'drain'), { code: 'UNKNOWN_BACKEND' });
  t.ok(calls.includes('close b'), 'disable --close closes its WebSockets');
  t.ok(calls.includes('admin changed'), 'the drain monitor is told');

  await t.rejects(admin.remove('a', false), { code: 'NOT_DRAINED' });
  await t.rejects(admin.remove('zz', false), { code: 'UNKNOWN_BACKEND' });
  await admin.setWeight('a', 3);
  await admin.remove('a', true);
  t.notOk(pool.has('a'));
  t.same(store.saved.at(-1)!.removed, ['a'], 'a config backend removed: a removal record');
  t.same(store.saved.at(-1)!.weights, {}, 'and its weight record goes');
  await admin.remove('c', true);
  t.same(store.saved.at(-1)!.added, [], 'a run-time backend removed: its addition goes');
  t.ok(calls.includes('forget a') && calls.includes('forget c'));
  await t.rejects(admin.remove('b', true), { code: 'LAST_BACKEND' });

  store.reachable = false;
  const refused = { code: 'STATE_UNAVAILABLE', message: 'the shared state cannot take changes now (Redis at 127.0.0.1:6379 is unreachable); nothing was changed, try again when it is back' };
  const saves = store.saved.length;
  await t.rejects(admin.setAdminState('b', 'drain'), refused);
  await t.rejects(admin.add({ id: 'n', url: 'http://127.0.0.1:9' }), refused);
  await t.rejects(admin.setWeight('b', 3), refused);
  await t.rejects(admin.remove('b', true), refused);
  t.equal(pool.member('b')!.admin, 'ready', 'a shared store that cannot be reached: nothing is applied');
  t.notOk(pool.has('n'));
  t.equal(store.saved.length, saves, 'and nothing written');
  store.reachable = true;

  store.fail = true;
  await t.rejects(admin.setAdminState('b', 'drain'), { code: 'STATE_UNAVAILABLE', message: /^the change is live on this balancer only, the shared state could not take it: disk full/ });
  t.equal(pool.member('b')!.admin, 'draining', 'a shared store failing after saying it could: the change is live here only, and the answer says so');
  store.kind = 'file';
  await t.rejects(admin.setAdminState('b', 'undrain'), { code: 'INTERNAL', message: /the change is live, but the state file could not be written: disk full/ });
  t.equal(pool.member('b')!.admin, 'ready', 'the file store: the change is live all the same');
});

t.test('backend admin: a reload reconciles, and changes made on another instance are followed', async (t) => {
  const fromFile = [backend('a'), backend('b')];
  const { pool, admin, calls } = backendAdmin(fromFile);
  const result = admin.reconcile([backend('a', 4), backend('x')]);
  t.same(result, { added: ['x'], removed: ['b'], updated: ['a'] });
  t.equal(pool.member('a')!.config.weight, 4);

  const elsewhere: BackendRecords = { added: [backend('r')], removed: ['b'], admin: { a: { admin: 'draining', since: 1000 }, r: { admin: 'disabled' } }, weights: { a: 9 } };
  admin.follow(elsewhere);
  t.same(
    pool.configs().map((b) => [b.id, b.weight]),
    [['a', 9], ['r', 1]],
    'the running file\'s backends, merged with the shared records',
  );
  t.equal(pool.member('a')!.admin, 'draining');
  t.equal(pool.member('a')!.drainingSince, 1000, 'with the drain clock of the instance that drained it');
  t.equal(pool.member('r')!.admin, 'disabled');
  t.equal(admin.sourceOf('r'), 'runtime');
  admin.follow({ ...elsewhere, admin: {} });
  t.equal(pool.member('a')!.admin, 'ready', 'undrained elsewhere: ready here');
  t.equal(pool.member('r')!.admin, 'ready');
  t.ok(calls.filter((c) => c === 'admin changed').length >= 2, 'the drain monitor looks after each');
});

/** A partition store in memory: first writer wins, can fail, and can announce changes made elsewhere. */
function memoryPartitions() {
  const records = new Map<string, PartitionRecord>();
  const listeners: ((change: StateChange) => void)[] = [];
  const table: PartitionTable = {
    get size() {
      return records.size;
    },
    get: (key) => records.get(key),
    entries: (offset = 0, limit = 100) => [...records.values()].sort((x, y) => (x.key < y.key ? -1 : 1)).slice(offset, offset + limit),
    counts: () => {
      const counts = new Map<string, number>();
      for (const r of records.values()) counts.set(r.backend, (counts.get(r.backend) ?? 0) + 1);
      return counts;
    },
    touch: () => undefined,
    lastSeen: () => undefined,
  };
  const store = {
    failing: false,
    reachable: true,
    health(): StateHealth {
      return this.reachable ? { kind: 'redis', ok: true } : { kind: 'redis', ok: false };
    },
    async assignPartition(key: string, backend: string, replacing?: string): Promise<AssignResult> {
      if (this.failing) throw new Error('store down');
      const current = records.get(key);
      if (current !== undefined && current.backend !== replacing) return { record: current, won: false };
      const record = { key, backend, assignedAt: 1 };
      records.set(key, record);
      return { record, won: true };
    },
    async movePartition(key: string, backend: string, drain: boolean): Promise<PartitionRecord> {
      if (this.failing) throw new Error('store down');
      const current = records.get(key);
      const record: PartitionRecord = { key, backend, assignedAt: 1, ...(current === undefined ? {} : { previous: current.backend, movedAt: Date.now(), drainPrevious: drain }) };
      records.set(key, record);
      return record;
    },
    async settlePartition(key: string): Promise<PartitionRecord | undefined> {
      if (this.failing) throw new Error('store down');
      const current = records.get(key);
      if (current !== undefined) records.set(key, { key, backend: current.backend, assignedAt: 1 });
      return records.get(key);
    },
    onChange(listener: (change: StateChange) => void): () => void {
      listeners.push(listener);
      return () => listeners.splice(listeners.indexOf(listener), 1);
    },
  } satisfies PartitionWriter & { onChange: unknown; failing: boolean; health(): StateHealth };
  const announce = (change: StateChange): void => {
    if (change.kind === 'partition') {
      if (change.record === undefined) records.delete(change.key);
      else records.set(change.key, change.record);
    }
    for (const l of [...listeners]) l(change);
  };
  return { records, table, store, announce, listeners };
}

function partitionAdmin(pins: Record<string, string> = {}) {
  const parts = memoryPartitions();
  const pool = new Pool([backend('a'), backend('b')]);
  const changed: [string, PartitionLookup | undefined][] = [];
  const sessions = new Map<string, number>();
  const deps: PartitionAdminDeps = {
    pool,
    logger,
    partitionSessions: (key) => sessions.get(key) ?? 0,
    partitionChanged: (key, lookup) => changed.push([key, lookup]),
    drainMaxWait: () => 60_000,
  };
  const directory = new PartitionDirectory(parts.table, parts.store, pins);
  return { ...parts, pool, changed, sessions, directory, admin: new PartitionAdmin(directory, parts.store, deps) };
}

t.test('partition admin: first writer wins, pins and unknown backends are never assigned, a refused one is replaced', async (t) => {
  const { admin, changed, store } = partitionAdmin({ pinned: 'a' });
  t.same(await admin.assign('acme', 'a', undefined), { accepted: true, lookup: { backend: 'a', pinned: false, previous: undefined } });
  t.same(changed, [['acme', { backend: 'a', pinned: false, previous: undefined }]], 'the traffic plane is told');
  t.same(await admin.assign('acme', 'b', undefined), { accepted: false, lookup: { backend: 'a', pinned: false, previous: undefined } }, 'a later writer is told where it lives');
  t.same(await admin.assign('pinned', 'b', undefined), { accepted: false, lookup: { backend: 'a', pinned: true } });
  t.same(await admin.assign('new', 'gone', undefined), { accepted: false, lookup: undefined }, 'a backend not in the pool');
  t.equal(await admin.resolve('acme', 'b'), true, 'this process: the key\'s server refused this very request, so it is replaced');
  t.equal(await admin.resolve('globex', 'b'), true);
  t.same(admin.counts(), { a: 1, b: 2 }, 'pins count');
  admin.seen(['acme', 'pinned']);
  t.equal(admin.list(0, 10).total, 3);
  store.failing = true;
  await t.rejects(admin.resolve('initech', 'a'), /store down/, 'a store that cannot take it: the request gets 503');
});

t.test('partition admin: moves, their errors, settling, and changes made elsewhere', async (t) => {
  const { admin, changed, store, sessions, announce, listeners } = partitionAdmin({ pinned: 'a' });
  await t.rejects(admin.move('\u0000', 'a', false), { code: 'INVALID_BODY' });
  await t.rejects(admin.move('acme', 'zz', false), { code: 'UNKNOWN_BACKEND' });
  await t.rejects(admin.move('pinned', 'b', false), { code: 'PARTITION_PINNED' });
  t.same(await admin.move('acme', 'a', false), { key: 'acme', backend: 'a', pinned: false, assignedAt: new Date(1).toISOString(), lastSeen: null, previous: null, sessions: 0 });
  sessions.set('acme', 2);
  const moved = await admin.move('acme', 'b', true);
  t.equal(moved.previous, 'a', 'a move with --drain remembers the old server');
  t.equal(moved.sessions, 2);

  await admin.settleDrainedMoves();
  t.equal(admin.directory.lookup('acme')!.previous, 'a', 'live sessions on the old server: not settled');
  sessions.set('acme', 0);
  store.failing = true;
  await admin.settleDrainedMoves();
  t.equal(admin.directory.lookup('acme')!.previous, 'a', 'a store that fails: tried again later');
  await t.rejects(admin.move('acme', 'a', false), { code: 'INTERNAL', message: /could not be stored: store down/ });
  store.failing = false;
  const before = changed.length;
  await Promise.all([admin.settleDrainedMoves(), admin.settleDrainedMoves()]);
  t.equal(admin.directory.lookup('acme')!.previous, undefined, 'no session left: settled');
  t.equal(changed.length, before + 1, 'once, though asked twice at the same time');

  announce({ kind: 'partition', key: 'remote', record: { key: 'remote', backend: 'b', assignedAt: 5, previous: 'a', movedAt: 6, drainPrevious: true } });
  t.same(changed.at(-1), ['remote', { backend: 'b', pinned: false, previous: 'a' }], 'a change made elsewhere reaches the traffic plane');
  announce({ kind: 'backends', records: emptyRecords() });
  t.equal(changed.at(-1)![0], 'remote', 'other kinds of change are not the partition admin\'s');
  await admin.settleDrainedMoves();
  t.equal(admin.directory.lookup('remote')!.previous, undefined, 'and a move with --drain made elsewhere is settled here too');

  store.reachable = false;
  await t.rejects(admin.move('acme', 'a', false), { code: 'STATE_UNAVAILABLE', message: /\(redis unavailable\); nothing was changed/ });
  store.reachable = true;

  admin.start();
  admin.close();
  t.equal(listeners.length, 0, 'closed: no longer following the store');
});

t.test('fleet host: workers reach outlier detection, the backoff and the partition admin', async (t) => {
  const pool = new Pool([backend('a')]);
  const seen: string[] = [];
  const outlier = {
    recordSuccess: (id: string) => seen.push(`ok ${id}`),
    recordFailure: (id: string, kind: string) => seen.push(`fail ${id} ${kind}`),
  } as unknown as OutlierDetector;
  const maintenance = new MaintenanceBackoff(pool, () => 60_000);
  t.teardown(() => maintenance.close());
  const metrics = { observeRequest: (id: string) => seen.push(`metric ${id}`) } as unknown as BalancerMetrics;
  let metricsOn = false;
  const outcomes = new OutcomeRecorder({ pool, outlier, maintenance, metrics, metricsEnabled: () => metricsOn });
  outcomes.requestFinished('a', 'ok', 0.1);
  outcomes.requestFinished('a', 'timeout', 0.1);
  outcomes.requestFinished('a', 'client-abort' as never, 0.1);
  metricsOn = true;
  outcomes.requestFinished('a', 'backend-error', 0.1);
  outcomes.backendFailed('a');
  t.same(seen, ['ok a', 'fail a timeout', 'fail a backend-error', 'metric a', 'fail a connect']);

  const shared: [string, string | undefined][] = [];
  const host = new FleetHostAdapter(outcomes, metrics, undefined, { publishLearned: (id, backend) => void shared.push([id, backend]) }, () => ({ a: 4 }));
  t.same(host.sessionsOnOtherInstances(), { a: 4 }, 'what the workers hear of the other instances');
  host.learned('s1', 'a');
  host.learned('s1', undefined);
  t.same(shared, [['s1', 'a'], ['s1', undefined]], 'a session id a worker learned goes to the state store');
  seen.length = 0;
  host.recordOutcomes('a', [2, -1]);
  host.recordOutcomes('gone', [1]);
  t.same(seen, ['ok a', 'fail a proxy-error'], 'runs replayed in order (a run of successes resets the streak once); a backend no longer in the pool is ignored');
  host.backendInMaintenance('a');
  t.equal(pool.member('a')!.state, 'maintenance');
  host.partitionsSeen(['x']);
  t.same(host.partitionCounts(), {}, 'not partition mode: no counts');
  await t.rejects(host.assignPartition('k', 'a', undefined), new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")'));

  const { admin } = partitionAdmin();
  const partitioned = new FleetHostAdapter(outcomes, metrics, admin, { publishLearned: () => undefined }, () => ({}));
  t.same(await partitioned.assignPartition('k', 'a', undefined), { accepted: true, lookup: { backend: 'a', pinned: false, previous: undefined } });
  partitioned.partitionsSeen(['k']);
  t.same(partitioned.partitionCounts(), { a: 1, b: 0 });
});

t.test('maintenance backoff: a new 503 restarts the clock; the backoff ends by itself', async (t) => {
  const pool = new Pool([backend('a')]);
  const backoff = new MaintenanceBackoff(pool, () => 20);
  backoff.enter('a', 'test');
  backoff.enter('a', 'test again');
  t.equal(pool.member('a')!.state, 'maintenance');
  // The backoff's timer is unref'd (it never holds a closing balancer open): keep this test alive meanwhile.
  const alive = setInterval(() => undefined, 1000);
  await new Promise<void>((resolve) => pool.on('change', (c) => c.to === 'up' && resolve()));
  clearInterval(alive);
  t.equal(pool.member('a')!.state, 'up', 'maintenanceBackoff passed');
  backoff.enter('a', 'once more');
  backoff.close();
});

t.test('reload: refused without a config file, or with one that cannot be read', async (t) => {
  const dir = t.testdir();
  const running = parseConfigText(JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:1' }] }), { baseDir: dir });
  await t.rejects(readReload(undefined, running, logger), { code: 'INVALID_CONFIG', message: 'this balancer was not started from a config file' });
  const file = join(dir, 'lb.json');
  writeFileSync(file, '{ not json');
  await t.rejects(readReload(file, running, logger), { code: 'INVALID_CONFIG', message: /the config file is invalid; the running config is kept/ });
});

t.test('other instances\' sessions: summed per backend, added to this instance\'s totals, gone when an instance is', async (t) => {
  const load = new InstanceLoad();
  const local = new SessionAccounting(60_000);
  local.touch('x', 'a', 'acme');
  const totals = withOtherInstances(() => local, load);
  t.same([totals.activeSessions('a'), totals.counters('a').sessions], [1, 1], 'alone: this instance\'s own');
  load.update('B', { a: 2, b: 1 });
  load.update('C', { a: 3 });
  const cases = [
    { what: 'a: own + B + C', got: [totals.activeSessions('a'), totals.counters('a').sessions, load.sessions('a')], want: [6, 6, 5] },
    { what: 'b: only B', got: [totals.activeSessions('b'), totals.counters('b').sessions, load.sessions('b')], want: [1, 1, 1] },
    { what: 'partition sessions stay this instance\'s', got: [totals.partitionSessions('acme')], want: [1] },
  ];
  for (const c of cases) t.same(c.got, c.want, c.what);
  t.same(load.all(), { a: 5, b: 1 });
  load.update('B', {});
  t.same(load.all(), { a: 3 }, 'an instance reported with no counts is gone');
});
