import t from 'tap';
import { DrainMonitor } from '../src/pool/drain-monitor.js';
import { Pool } from '../src/pool/pool.js';
import { SessionAccounting } from '../src/sessions/accounting.js';

t.test('a draining backend becomes drained when its sessions and WebSockets are gone, or at maxWait', async (t) => {
  let now = 0;
  const pool = new Pool([{ id: 'a', url: 'http://127.0.0.1:1', weight: 1, route: 'a' }, { id: 'b', url: 'http://127.0.0.1:2', weight: 1, route: 'b' }], () => now);
  const acc = new SessionAccounting(1000, 100, () => now);
  const monitor = new DrainMonitor(pool, acc, 60_000, () => now);
  acc.touch('c1', 'a');
  acc.websocketOpened('c2', 'a');
  pool.setAdmin('a', 'draining', 'test');
  monitor.check();
  t.equal(pool.member('a')!.state, 'draining');
  now = 5000;
  acc.sweep();
  monitor.check();
  t.equal(pool.member('a')!.state, 'draining', 'the WebSocket holds it');
  acc.websocketClosed('c2', 'a');
  now = 7000;
  acc.sweep();
  monitor.check();
  t.equal(pool.member('a')!.state, 'drained');
  acc.touch('c3', 'a');
  monitor.check();
  t.equal(pool.member('a')!.state, 'draining', 'a session came back');

  pool.setAdmin('b', 'draining', 'test');
  acc.touch('c9', 'b');
  now = 7000 + 60_000;
  monitor.check();
  t.equal(pool.member('b')!.state, 'drained', 'maxWait passed');
  monitor.start();
  monitor.stop();
});
