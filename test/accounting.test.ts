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

t.test('start and stop the sweep timer: one unref\'d timer however often started, it sweeps, stop clears it', async (t) => {
  // The timer is unref'd, so process.getActiveResourcesInfo() never lists it: record the
  // intervals created and cleared instead.
  const created: { handle: NodeJS.Timeout; ms: number | undefined; tick: () => void }[] = [];
  const cleared: unknown[] = [];
  const realSet = globalThis.setInterval;
  const realClear = globalThis.clearInterval;
  globalThis.setInterval = ((fn: () => void, ms?: number) => {
    const handle = realSet(fn, ms);
    created.push({ handle, ms, tick: fn });
    return handle;
  }) as typeof setInterval;
  globalThis.clearInterval = ((handle?: NodeJS.Timeout) => {
    if (handle !== undefined) cleared.push(handle);
    realClear(handle);
  }) as typeof clearInterval;
  t.teardown(() => {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
  });

  let now = 0;
  const acc = new SessionAccounting(1000, 100, () => now);
  acc.start();
  acc.start();
  t.equal(created.length, 1, 'started twice: one timer');
  const timer = created[0]!;
  t.equal(timer.ms, 1000, 'once a second');
  t.notOk(timer.handle.hasRef(), 'it does not keep the process alive');
  acc.touch('c1', 'a');
  now = 5000;
  timer.tick();
  t.equal(acc.activeSessions('a'), 0, 'its tick sweeps expired sessions');
  acc.setIdle(2000);
  t.equal(created.length, 1, 'setIdle keeps the timer');
  acc.stop();
  t.same(cleared, [timer.handle], 'stop clears that timer');
  acc.stop();
  acc.start();
  t.equal(created.length, 2, 'a stopped accounting starts a new timer');
  acc.stop();
  t.equal(cleared.at(-1), created[1]!.handle, 'and stop clears it too');
});

t.test('a session never confirmed by its cookie idles out after a minute, not sessionIdle', async (t) => {
  let now = 0;
  const acc = new SessionAccounting(30 * 60_000, 100, () => now);
  for (let i = 0; i < 50; i++) acc.touch(`bot-${i}`, 'a', undefined, false);
  acc.touch('browser', 'a', undefined, false);
  t.equal(acc.activeSessions('a'), 51, 'pending sessions count at once (bounded load sees a burst)');
  now = 2000;
  acc.touch('browser', 'a', undefined, true); // the browser came back with the cookie
  t.equal(acc.activeSessions('a'), 51, 'confirming does not count twice');
  t.equal(acc.sessionBackend('browser'), 'a');
  now = 61_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 1, 'the 50 that never came back are gone after a minute');
  now = 20 * 60_000;
  acc.sweep();
  t.equal(acc.activeSessions('a'), 1, 'the confirmed one lives for sessionIdle');
  t.equal(acc.sessionBackend('bot-1'), undefined);
});

t.test('pending sessions are evicted before confirmed ones when the table is full', async (t) => {
  const acc = new SessionAccounting(60_000, 3, () => 0);
  acc.touch('c1', 'a');
  acc.touch('p1', 'a', undefined, false);
  acc.touch('c2', 'a');
  acc.touch('c3', 'a');
  t.equal(acc.activeSessions('a'), 3);
  t.equal(acc.sessionBackend('p1'), undefined, 'the pending one went');
  t.equal(acc.sessionBackend('c1'), 'a');
});

t.test('partition session counts follow sessions in and out', async (t) => {
  let now = 0;
  const acc = new SessionAccounting(1000, 100, () => now);
  acc.touch('c1', 'a', 'acme');
  acc.touch('c2', 'a', 'acme');
  acc.touch('c2', 'b', 'globex');
  t.equal(acc.partitionSessions('acme'), 1);
  t.equal(acc.partitionSessions('globex'), 1);
  now = 5000;
  acc.sweep();
  t.equal(acc.partitionSessions('acme'), 0);
  acc.websocketOpened('w1', 'a', 'acme', false);
  acc.forgetBackend('a');
  t.equal(acc.partitionSessions('acme'), 0);
});

t.test('listSessions: most recently seen first, per backend, requests and websockets, total before the limit', async (t) => {
  let now = 1000;
  const acc = new SessionAccounting(60_000, 100, () => now);
  acc.touch('c1', 'a');
  now = 2000;
  acc.touch('c2', 'b', undefined, false);
  now = 3000;
  acc.touch('c1', 'a');
  acc.websocketOpened('c3', 'a');
  now = 5000;
  const all = acc.listSessions(undefined, 10);
  t.equal(all.total, 3);
  t.same(all.sessions.map((s) => s.key), ['c3', 'c1', 'c2'], 'an open WebSocket counts as activity now');
  t.match(all.sessions[1], { key: 'c1', backend: 'a', createdAt: 1000, lastSeen: 3000, requests: 2, websockets: 0 });
  t.match(all.sessions[0], { key: 'c3', websockets: 1, lastSeen: 5000 });
  t.match(all.sessions[2], { key: 'c2', backend: 'b', requests: 1 }, 'pending sessions are listed too');
  const onA = acc.listSessions('a', 1);
  t.equal(onA.total, 2);
  t.same(onA.sessions.map((s) => s.key), ['c3']);
});
