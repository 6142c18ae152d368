/**
 * The dashboard's rings, pure: SeriesStore (typed-array time series: rates from counter
 * deltas, wrap-around, backends appearing and leaving, the window asked for) and EventLog
 * (bounded, newest first).
 */
import t from 'tap';
import { EventLog } from '../src/admin/events.js';
import { SeriesStore, type CounterSample } from '../src/admin/series.js';

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
