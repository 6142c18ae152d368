/**
 * The dashboard's rings, pure: SeriesStore (typed-array time series: rates from counter
 * deltas, wrap-around, backends appearing and leaving, the window asked for) and EventLog
 * (bounded, newest first), LatencyWindow (a recent p95 from histogram buckets).
 */
import t from 'tap';
import { EventLog } from '../src/admin/events.js';
import { SeriesStore, type CounterSample } from '../src/admin/series.js';
import { LatencyWindow } from '../src/admin/latency-window.js';
import { LATENCY_BUCKETS } from '../src/admin/metrics.js';

const row = (sessions: number, requests: number, errors = 0, websockets = 0): CounterSample => ({ sessions, websockets, requests, errors });

t.test('series: rates from counter deltas, nulls where there is no value yet', async (t) => {
  const store = new SeriesStore(2000, 5);
  t.same(store.window(900), { step: 2, start: null, points: 0, backends: {}, total: { sessions: [], websockets: [], rps: [], eps: [] } });
  store.sample(10_000, new Map([['a', row(1, 10)]]));
  store.sample(12_000, new Map([['a', row(2, 30, 4, 1)], ['b', row(5, 100)]]));
  store.sample(14_000, new Map([['a', row(2, 20)], ['b', row(6, 110, 2)]]));
  const w = store.window(900);
  t.equal(w.points, 3);
  t.equal(w.start, new Date(10_000).toISOString());
  t.same(w.backends.a, { sessions: [1, 2, 2], websockets: [0, 1, 0], rps: [null, 10, 0], eps: [null, 2, 0] }, 'a counter going backwards is no traffic, not a negative rate');
  t.same(w.backends.b, { sessions: [null, 5, 6], websockets: [null, 0, 0], rps: [null, null, 5], eps: [null, null, 1] }, 'a backend seen later has nothing before');
  t.same(w.total, { sessions: [1, 7, 8], websockets: [0, 1, 0], rps: [null, 10, 5], eps: [null, 2, 1] });
  t.same(store.window(4).points, 2, 'seconds=4 with a 2 s step: the last two samples');
  t.same(store.window(4).backends.a!.sessions, [2, 2]);
});

t.test('series: the ring wraps and keeps the last `points` samples, oldest first', async (t) => {
  const store = new SeriesStore(1000, 3);
  for (let i = 0; i < 7; i++) store.sample(i * 1000, new Map([['a', row(i, i * 10)]]));
  const w = store.window(900);
  t.equal(w.points, 3);
  t.equal(store.size, 3);
  t.equal(w.start, new Date(4000).toISOString());
  t.same(w.backends.a!.sessions, [4, 5, 6]);
  t.same(w.backends.a!.rps, [10, 10, 10]);
});

t.test('series: a backend that left is dropped; bad sizes are refused', async (t) => {
  const store = new SeriesStore(1000, 3);
  store.sample(0, new Map([['a', row(1, 0)], ['b', row(1, 0)]]));
  store.sample(1000, new Map([['a', row(1, 0)]]));
  t.same(Object.keys(store.window(900).backends), ['a']);
  t.throws(() => new SeriesStore(1000, 1), RangeError);
});

t.test('events: bounded ring, newest first', async (t) => {
  const log = new EventLog(3);
  t.same(log.latest(10), []);
  for (let i = 1; i <= 5; i++) log.add({ time: new Date(i).toISOString(), backend: `b${i}`, from: 'up', to: 'down', cause: `c${i}`, kind: 'state' });
  t.equal(log.size, 3);
  t.same(log.latest(10).map((e) => e.backend), ['b5', 'b4', 'b3'], 'the oldest went first');
  t.same(log.latest(2).map((e) => e.backend), ['b5', 'b4']);
  t.same(log.latest(0), []);
  t.throws(() => new EventLog(0), RangeError);
});

t.test('latency window: p95 interpolated in its bucket, over the recent window only', async (t) => {
  let now = 0;
  const w = new LatencyWindow(60_000, () => now);
  t.equal(w.p95Ms('a'), null, 'no requests: no p95');
  for (let i = 0; i < 100; i++) w.observe('a', 0.003); // all in the first bucket (0-5 ms)
  t.equal(w.p95Ms('a'), 4.8, '95th of 100 in [0, 5] ms');
  const buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  buckets[LATENCY_BUCKETS.indexOf(1) + 1] = 900; // 900 requests in (1 s, 2.5 s]
  w.add('a', buckets);
  t.ok(w.p95Ms('a')! > 1000 && w.p95Ms('a')! <= 2500, 'a worker\'s slow requests move the p95 into their bucket');
  now = 60_000;
  t.ok(w.p95Ms('a')! > 1000, 'one window later the counts since the older mark still count');
  now = 120_000;
  t.equal(w.p95Ms('a'), null, 'two windows later without requests: nothing recent');
  w.observe('a', 400);
  t.equal(w.p95Ms('a'), 300_000, 'beyond the largest bucket: its bound is all that is known');
  w.forget('a');
  t.equal(w.p95Ms('a'), null);
});
