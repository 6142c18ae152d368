import t from 'tap';
import { SessionAccounting } from '../src/sessions/accounting.js';

t.test('sessions are active within sessionIdle and expire after it', async (t) => {
  let now = 0;
  const acc = new SessionAccounting(10_000, 100, () => now);
  acc.touch('c1', 'a');
  acc.touch('c2', 'a');
  acc.touch('c3', 'b');
  t.equal(acc.activeSessions('a'), 2);
  t.equal(acc.activeSessions('b'), 1);
  t.equal(acc.activeSessions('zzz'), 0, 'unknown backend: zero');
  now = 6000;
  acc.touch('c1', 'a'); // c1 stays active
  now = 12_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 1, 'c2 expired, c1 seen recently');
  t.equal(acc.activeSessions('b'), 0);
  now = 30_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 0);
});

t.test('a session that moves is counted once, on its new backend', async (t) => {
  const acc = new SessionAccounting(10_000, 100, () => 0);
  acc.touch('c1', 'a');
  acc.touch('c1', 'b');
  t.equal(acc.activeSessions('a'), 0);
  t.equal(acc.activeSessions('b'), 1);
});

t.test('an open WebSocket keeps its session active past sessionIdle', async (t) => {
  let now = 0;
  const acc = new SessionAccounting(1000, 100, () => now);
  acc.websocketOpened('c1', 'a');
  t.equal(acc.counters('a').websockets, 1);
  now = 50_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 1, 'held by its WebSocket');
  acc.websocketClosed('c1', 'a');
  t.equal(acc.counters('a').websockets, 0);
  now = 52_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 0, 'then idles out');
  acc.websocketClosed('c1', 'a');
  t.equal(acc.counters('a').websockets, 0, 'never negative');
});

t.test('bounded: the oldest session goes when the table is full', async (t) => {
  const acc = new SessionAccounting(10_000, 3, () => 0);
  for (const id of ['c1', 'c2', 'c3', 'c4']) acc.touch(id, 'a');
  t.equal(acc.activeSessions('a'), 3);
});

t.test('sweep cost follows what expires: a large table of fresh sessions is skipped at once', async (t) => {
  let now = 0;
  const acc = new SessionAccounting(60_000, 1_000_000, () => now);
  for (let i = 0; i < 100_000; i++) acc.touch(`c${i}`, i % 2 ? 'a' : 'b');
  now = 1000;
  acc.sweep();
  t.equal(acc.activeSessions('a') + acc.activeSessions('b'), 100_000);
  acc.forgetBackend('a');
  t.equal(acc.activeSessions('a'), 0);
  t.equal(acc.activeSessions('b'), 50_000);
});

t.test('start and stop the sweep timer', async (t) => {
  const acc = new SessionAccounting(1000);
  acc.start();
  acc.start();
  acc.setIdle(2000);
  acc.stop();
  t.pass('no timer left behind');
});
