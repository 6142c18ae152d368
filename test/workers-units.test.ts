/**
 * The pieces of `start --workers N` that need no processes, as tables of cases: the
 * primary's sums of worker reports (ClusterTotals), a worker's report (WorkerReporter),
 * its mirror of the primary's pool (same snapshot), its partition cache and the
 * assignment round trip (WorkerPartitions), the merged latency histogram, the session
 * context's cluster view, and `--workers` parsing.
 */
import t from 'tap';
import { BalancerMetrics, LATENCY_BUCKETS } from '../src/admin/metrics.js';
import { PoolMirror, memberInputs } from '../src/cluster/pool-mirror.js';
import type { ToPrimary, WorkerReport } from '../src/cluster/protocol.js';
import { WorkerReporter } from '../src/cluster/reporter.js';
import { ClusterTotals } from '../src/cluster/totals.js';
import { WorkerPartitions } from '../src/cluster/worker-partitions.js';
import { parseWorkers } from '../src/cli/start.js';
import { CliError } from '../src/cli/cli-error.js';
import { Pool } from '../src/pool/pool.js';
import { AffinityCookieCodec } from '../src/routing/affinity-cookie.js';
import { SessionAccounting, type BackendCounters } from '../src/sessions/accounting.js';
import { LearnedSessions } from '../src/sessions/learned-sessions.js';
import { SessionContext } from '../src/sessions/session-context.js';

const backend = (id: string, weight = 1) => ({ id, url: `http://127.0.0.1:${9000 + id.charCodeAt(0)}`, weight, route: id });

function counters(partial: Partial<BackendCounters>): BackendCounters {
  return { sessions: 0, websockets: 0, requests: 0, errors: 0, clientAborts: 0, bytesIn: 0, bytesOut: 0, ...partial };
}

function report(partial: Partial<WorkerReport>): WorkerReport {
  return { type: 'report', counters: {}, inFlight: 0, outcomes: {}, latency: [], partitionSessions: [], partitionsSeen: [], ...partial };
}

t.test('ClusterTotals sums the workers, keeps the counters of dead ones, and tells each worker the others’ sessions', async (t) => {
  const totals = new ClusterTotals();
  const known = (id: string) => id !== 'gone';
  totals.update(1, report({ counters: { a: counters({ sessions: 3, websockets: 1, requests: 10, bytesOut: 100 }), gone: counters({ sessions: 9 }) }, inFlight: 2, partitionSessions: [['acme', 2]] }), known);
  totals.update(2, report({ counters: { a: counters({ sessions: 2, requests: 5, errors: 1 }), b: counters({ sessions: 4, requests: 7 }) }, inFlight: 1, partitionSessions: [['acme', 1], ['globex', 3]] }), known);
  const cases = [
    { what: 'a summed', got: totals.counters('a'), want: counters({ sessions: 5, websockets: 1, requests: 15, errors: 1, bytesOut: 100 }) },
    { what: 'b from worker 2', got: totals.counters('b'), want: counters({ sessions: 4, requests: 7 }) },
    { what: 'a backend not in the pool is ignored', got: totals.counters('gone'), want: counters({}) },
  ];
  for (const c of cases) t.same(c.got, c.want, c.what);
  t.equal(totals.activeSessions('a'), 5);
  t.equal(totals.inFlight, 3);
  t.equal(totals.partitionSessions('acme'), 3);
  t.same(totals.sessionsElsewhere(1), { a: 2, b: 4 }, 'worker 1 hears of worker 2’s sessions');
  t.same(totals.sessionsElsewhere(2), { a: 3 }, 'and the other way round');

  // A later report replaces the worker's numbers; a partition at 0 disappears.
  totals.update(2, report({ counters: { a: counters({ sessions: 1, requests: 6, errors: 1 }), b: counters({ sessions: 4, requests: 8 }) }, partitionSessions: [['globex', 0]] }), known);
  t.equal(totals.partitionSessions('globex'), 0);
  t.equal(totals.counters('a').requests, 16);

  // Worker 1 dies: its sessions go, its requests stay counted.
  totals.retire(1);
  totals.retire(99); // unknown: nothing happens
  t.same(totals.counters('a'), counters({ sessions: 1, requests: 16, errors: 1, bytesOut: 100 }), 'cumulative counters never go backwards');
  t.equal(totals.partitionSessions('acme'), 1, 'its partition sessions go');
  t.same(totals.sessionsElsewhere(2), {});

  totals.forgetBackend('a');
  t.same(totals.counters('a'), counters({}), 'a removed backend is forgotten, dead workers’ counters too');
});

t.test('ClusterTotals counts a browser held by two workers once, in status, bounded load and maxSessions', async (t) => {
  const totals = new ClusterTotals();
  const known = (id: string) => id !== 'gone';
  // Steps: [worker, a's sessions in that worker, b's sessions, session changes]; then what the totals say.
  const steps: { what: string; worker: number; a: number; b?: number; changes: [string, string | null][]; want: { a: number; b: number; elsewhere1: Record<string, number>; elsewhere2: Record<string, number> } }[] = [
    { what: 'worker 1 places x and y on a', worker: 1, a: 2, changes: [['x', 'a'], ['y', 'a']], want: { a: 2, b: 0, elsewhere1: {}, elsewhere2: { a: 2 } } },
    { what: 'x reaches worker 2 too: still one session', worker: 2, a: 1, changes: [['x', 'a']], want: { a: 2, b: 0, elsewhere1: { a: 0 }, elsewhere2: { a: 1 } } },
    { what: 'a new browser z on worker 2', worker: 2, a: 2, changes: [['z', 'a']], want: { a: 3, b: 0, elsewhere1: { a: 1 }, elsewhere2: { a: 1 } } },
    { what: 'x moves to b on worker 2 (a failover): counted on each backend it is held on', worker: 2, a: 1, b: 1, changes: [['x', 'b']], want: { a: 3, b: 1, elsewhere1: { a: 1, b: 1 }, elsewhere2: { a: 2 } } },
    { what: 'x ends on worker 1', worker: 1, a: 1, changes: [['x', null], ['never-seen', null]], want: { a: 2, b: 1, elsewhere1: { a: 1, b: 1 }, elsewhere2: { a: 1 } } },
    { what: 'y reaches worker 2 on a backend since removed: ignored', worker: 2, a: 1, b: 1, changes: [['y', 'gone']], want: { a: 2, b: 1, elsewhere1: { a: 1, b: 1 }, elsewhere2: { a: 1 } } },
  ];
  for (const step of steps) {
    const c: Record<string, BackendCounters> = { a: counters({ sessions: step.a }) };
    if (step.b !== undefined) c.b = counters({ sessions: step.b });
    totals.update(step.worker, report({ counters: c, sessionChanges: step.changes }), known);
    t.same(
      { a: totals.counters('a').sessions, b: totals.activeSessions('b'), elsewhere1: totals.sessionsElsewhere(1), elsewhere2: totals.sessionsElsewhere(2) },
      step.want,
      step.what,
    );
  }
  // z and x reach worker 1 too, then worker 2 dies: worker 1's own count is the truth.
  totals.update(1, report({ counters: { a: counters({ sessions: 2 }), b: counters({ sessions: 1 }) }, sessionChanges: [['z', 'a'], ['x', 'b']] }), known);
  t.equal(totals.counters('a').sessions, 2, 'y and z, once each');
  t.equal(totals.counters('b').sessions, 1, 'x once');
  totals.retire(2);
  t.same([totals.counters('a').sessions, totals.counters('b').sessions], [2, 1], 'a dead worker takes its duplicates with it');
  totals.update(2, report({ counters: { b: counters({ sessions: 1 }) }, sessionChanges: [['x', 'b']] }), known);
  t.equal(totals.counters('b').sessions, 1, 'its replacement sees x: once');
  totals.forgetBackend('b');
  totals.update(1, report({ counters: { a: counters({ sessions: 2 }) }, sessionChanges: [['x', null]] }), known);
  totals.update(2, report({ counters: {}, sessionChanges: [['x', null]] }), known);
  t.equal(totals.counters('b').sessions, 0, 'a removed backend has no duplicates left to subtract');
  t.equal(totals.counters('a').sessions, 2);
});

t.test('SessionAccounting tells a worker which sessions were placed, moved and ended', async (t) => {
  let now = 1000;
  const accounting = new SessionAccounting(10_000, 1_000_000, () => now);
  accounting.touch('untracked', 'a');
  t.same(accounting.takeChangedSessions(), [], 'nothing while not tracking');
  accounting.trackSessionChanges();
  accounting.touch('x', 'a');
  accounting.touch('x', 'a');
  accounting.touch('y', 'a');
  accounting.touch('y', 'b');
  t.same(accounting.takeChangedSessions(), [['x', 'a'], ['y', 'b']], 'placed, and moved: the backend now');
  t.same(accounting.takeChangedSessions(), [], 'each change once');
  now += 20_000;
  accounting.sweep();
  t.same(new Map(accounting.takeChangedSessions()), new Map([['untracked', null], ['x', null], ['y', null]]), 'ended: null');
});

t.test('WorkerReporter keeps outcomes in order as runs, latency as bucket counts, and passes maintenance on at once', async (t) => {
  const sent: ToPrimary[] = [];
  const reporter = new WorkerReporter((m) => sent.push(m), true);
  const outcomes = ['ok', 'ok', 'backend-error', 'timeout', 'client-abort', 'ok'] as const;
  for (const o of outcomes) reporter.requestFinished('a', o, 0.003);
  reporter.backendFailed('a');
  reporter.backendFailed('b');
  reporter.requestFinished('b', 'ok', 1000);
  reporter.backendInMaintenance('c');
  t.same(sent, [{ type: 'maintenance', backend: 'c' }]);

  const acc = new SessionAccounting(60_000);
  acc.trackPartitionChanges();
  acc.touch('s1', 'a', 'acme');
  acc.counters('a').requests += 2;
  const r = reporter.take(acc, 4, ['acme']);
  t.same(r.outcomes, { a: [2, -2, 1, -1], b: [-1, 1] }, 'runs: +successes, -failures, client aborts not counted');
  t.same(r.counters, { a: counters({ sessions: 1, requests: 2 }) });
  t.same(r.partitionSessions, [['acme', 1]]);
  t.same(r.partitionsSeen, ['acme']);
  t.equal(r.inFlight, 4);
  const fast = r.latency.find((l) => l.backend === 'a' && l.outcome === 'ok')!;
  t.equal(fast.buckets[0], 3, 'three ok requests in the first bucket (<= 5 ms)');
  t.equal(fast.buckets.length, LATENCY_BUCKETS.length + 1);
  const slow = r.latency.find((l) => l.backend === 'b')!;
  t.equal(slow.buckets[LATENCY_BUCKETS.length], 1, 'beyond the last bucket: +Inf');
  const next = reporter.take(acc, 0, []);
  t.same([next.outcomes, next.latency, next.partitionSessions], [{}, [], []], 'the next report starts empty');

  const quiet = new WorkerReporter(() => undefined, false);
  quiet.requestFinished('a', 'ok', 0.1);
  t.same(quiet.take(acc, 0, []).latency, [], 'metrics off: no latency gathered');
});

t.test('PoolMirror gives a worker the primary’s snapshot', async (t) => {
  const primary = new Pool([backend('a'), backend('b'), backend('c', 3)]);
  primary.setAdmin('a', 'draining', 'test', 1234);
  primary.setHealth('b', false, 'test');
  primary.setMaintenance('c', true, 'test');
  const mirror = new PoolMirror(memberInputs(primary.members()));
  const view = (p: Pool) => p.snapshot.backends.map((b) => ({ ...b }));
  t.same(view(mirror.pool), view(primary), 'same backends, order, states and hashes');
  t.equal(mirror.pool.member('a')!.drainingSince, 1234);

  primary.setAdmin('a', 'ready', 'test');
  primary.setHealth('b', true, 'test');
  primary.remove('c', 'test');
  primary.add(backend('d'), 'test');
  primary.update({ ...backend('a'), weight: 5 }, 'test');
  t.same(mirror.apply(memberInputs(primary.members())), ['c'], 'the backends that left are named');
  t.same(view(mirror.pool), view(primary), 'still the same after changes');
});

t.test('WorkerPartitions: pins, the cache, and the assignment round trip', async (t) => {
  const sent: ToPrimary[] = [];
  const parts = new WorkerPartitions({ pinned: 'a' }, { a: 2 }, (m) => sent.push(m));
  t.same(parts.lookup('pinned'), { backend: 'a', pinned: true });
  t.equal(parts.lookup('acme'), undefined);
  t.equal(parts.count('a'), 2);
  t.equal(parts.count('b'), 0);
  parts.setCounts({ b: 1 });
  t.equal(parts.count('b'), 1);

  // First request for a new key: the primary accepts it.
  const first = parts.resolve('acme', 'b');
  const ask = sent.at(-1) as Extract<ToPrimary, { type: 'assign' }>;
  t.match(ask, { type: 'assign', key: 'acme', backend: 'b', replacing: undefined });
  parts.answered(ask.id, { accepted: true, lookup: { backend: 'b', pinned: false } });
  t.equal(await first, true);
  t.same(parts.lookup('acme'), { backend: 'b', pinned: false }, 'cached');

  // The router re-places a cached key only when its server refused: the primary is told which.
  const again = parts.resolve('acme', 'c');
  const ask2 = sent.at(-1) as Extract<ToPrimary, { type: 'assign' }>;
  t.equal(ask2.replacing, 'b');
  parts.answered(ask2.id, { accepted: false, lookup: { backend: 'a', pinned: false } });
  t.equal(await again, false, 'someone else placed it: route again');
  t.same(parts.lookup('acme'), { backend: 'a', pinned: false });

  const failing = parts.resolve('initech', 'a');
  parts.answered((sent.at(-1) as { id: number }).id, { accepted: false, lookup: undefined }, 'disk full');
  await t.rejects(failing, /disk full/, 'a store failure fails the request (503)');
  parts.answered(12345, { accepted: true, lookup: undefined }); // unknown id: ignored

  parts.changed('acme', undefined);
  t.equal(parts.lookup('acme'), undefined, 'an assignment dropped by the primary');
  parts.changed('hooli', { backend: 'a', pinned: true });
  t.equal(parts.lookup('hooli'), undefined, 'pins come from the config, not the cache');
  parts.setPins({ hooli: 'c' });
  t.same(parts.lookup('hooli'), { backend: 'c', pinned: true });
  t.equal(parts.lookup('pinned'), undefined, 'a pin removed by a reload');

  parts.seen('x');
  parts.seen('x');
  parts.seen('y');
  t.same(parts.takeSeen(), ['x', 'y']);
  t.same(parts.takeSeen(), []);

  const pending = parts.resolve('umbrella', 'a');
  parts.close();
  await t.rejects(pending, /stopping/, 'a worker that stops fails what is pending');
});

t.test('BalancerMetrics merged latency: worker deltas add up to one histogram', async (t) => {
  const metrics = new BalancerMetrics(() => [], { latency: 'merged', workers: () => ({ alive: 2, restarts: 1, changes: 5, behind: 1 }), inFlight: () => 3 });
  const buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  buckets[0] = 2;
  buckets[LATENCY_BUCKETS.length] = 1;
  metrics.addLatency('a', 'ok', buckets, 100.5);
  metrics.addLatency('a', 'ok', buckets, 0.5);
  metrics.addLatency('b', 'timeout', [0, 1], 0.007);
  metrics.observeRequest('a', 0.1, 'ok'); // not used in merged mode
  const text = await metrics.text();
  t.match(text, '# TYPE servoylb_request_duration_seconds histogram');
  t.match(text, 'servoylb_request_duration_seconds_bucket{le="0.005",backend="a",outcome="ok"} 4');
  t.match(text, 'servoylb_request_duration_seconds_bucket{le="300",backend="a",outcome="ok"} 4');
  t.match(text, 'servoylb_request_duration_seconds_bucket{le="+Inf",backend="a",outcome="ok"} 6');
  t.match(text, 'servoylb_request_duration_seconds_sum{backend="a",outcome="ok"} 101');
  t.match(text, 'servoylb_request_duration_seconds_count{backend="a",outcome="ok"} 6');
  t.match(text, 'servoylb_request_duration_seconds_bucket{le="0.01",backend="b",outcome="timeout"} 1');
  t.match(text, 'servoylb_workers 2');
  t.match(text, 'servoylb_worker_restarts_total 1');
  t.match(text, 'servoylb_worker_changes_total 5');
  t.match(text, 'servoylb_workers_behind 1');
  t.match(text, 'servoylb_requests_in_flight 3');
  metrics.forgetBackend('a');
  t.notMatch(await metrics.text(), 'backend="a"', 'a removed backend disappears');
});

t.test('SessionContext in a worker: bounded load counts the other workers; a signed cookie vouches for a session it has not seen', async (t) => {
  const codec = new AffinityCookieCodec(['0123456789abcdef0123']);
  const acc = new SessionAccounting(60_000);
  const ctx = new SessionContext(codec, new LearnedSessions({ max: 10, ttlMs: 0 }), acc, 1.25, { name: 'SERVOYLB', secure: false, sameSite: 'Lax', maxAgeMs: undefined }, undefined, {
    sessionsElsewhere: (id) => (id === 'a' ? 7 : 0),
  });
  acc.touch('local', 'a');
  t.equal(ctx.activeSessions('a'), 8, 'its own plus the others’');
  t.equal(ctx.activeSessions('b'), 0);
  const token = ctx.verifyCookie(codec.sign('elsewhere', 'b'))!;
  t.equal(ctx.sessionBackend('elsewhere'), 'b', 'the cookie just verified names its backend');
  t.equal(ctx.sessionBackend('someone-else'), undefined);
  t.equal(ctx.sessionBackend('local'), 'a', 'a session seen here: where it was seen');
  t.equal(token.clientId, 'elsewhere');

  const single = new SessionContext(codec, new LearnedSessions({ max: 10, ttlMs: 0 }), new SessionAccounting(60_000), 1.25, { name: 'SERVOYLB', secure: false, sameSite: 'Lax', maxAgeMs: undefined });
  single.verifyCookie(codec.sign('elsewhere', 'b'));
  t.equal(single.sessionBackend('elsewhere'), undefined, 'one process: only what it has seen');
});

t.test('LearnedSessions tells a worker what a Set-Cookie taught it, and lists its entries', async (t) => {
  const changes: [string, string | undefined][] = [];
  const learned = new LearnedSessions({ max: 10, ttlMs: 0, onChange: (id, b) => changes.push([id, b]) });
  learned.learnFromSetCookie('JSESSIONID=abc; Path=/', 'JSESSIONID', 'a');
  learned.learnFromSetCookie('JSESSIONID=abc; Max-Age=0', 'JSESSIONID', 'a');
  learned.learn('direct', 'b'); // from another worker: not passed on again
  t.same(changes, [['abc', 'a'], ['abc', undefined]]);
  t.same(learned.entries(), [['direct', 'b']]);
  const off: unknown[] = [];
  const disabled = new LearnedSessions({ max: 0, ttlMs: 0, onChange: (...a) => off.push(a) });
  disabled.learnFromSetCookie('JSESSIONID=abc', 'JSESSIONID', 'a');
  disabled.learnFromSetCookie('JSESSIONID=abc; Max-Age=0', 'JSESSIONID', 'a');
  t.same([off, disabled.entries()], [[], []], 'learning off: nothing to pass on');
});

t.test('--workers: a whole number from 1 to 64, or auto', async (t) => {
  const cases = [
    { value: '1', want: 1 },
    { value: '4', want: 4 },
    { value: '64', want: 64 },
  ];
  for (const c of cases) t.equal(parseWorkers(c.value), c.want, c.value);
  const auto = parseWorkers('auto');
  t.ok(auto >= 1 && auto <= 64, `auto: ${auto}`);
  for (const bad of ['0', '65', '-1', '1.5', 'two', '']) t.throws(() => parseWorkers(bad), CliError, JSON.stringify(bad));
});
