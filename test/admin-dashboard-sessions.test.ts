/**
 * The dashboard's sign-in sessions (src/admin/dashboard-sessions.ts): random ids, expiry,
 * sign-out, and a bounded table that drops expired sessions first, then the oldest.
 */
import t from 'tap';
import { DashboardSessions } from '../src/admin/dashboard-sessions.js';

t.test('ids are random and valid until they expire or are deleted', async (t) => {
  let now = 1_000_000;
  const sessions = new DashboardSessions({ ttlMs: 1000, now: () => now });
  const a = sessions.create();
  const b = sessions.create();
  t.match(a, /^[A-Za-z0-9_-]{43}$/);
  t.not(a, b);
  t.ok(sessions.valid(a));
  t.notOk(sessions.valid(`${a}x`), 'a near miss is not valid');
  t.notOk(sessions.valid(''), 'nor an empty id');
  sessions.delete(b);
  t.notOk(sessions.valid(b), 'deleted');
  t.ok(sessions.valid(a), 'the other one lives');
  now += 1000;
  t.notOk(sessions.valid(a), 'expired after ttlMs');
  t.equal(sessions.size, 0, 'an expired session is dropped when seen');
});

t.test('the table is bounded: expired sessions go first, then the oldest', async (t) => {
  let now = 0;
  const sessions = new DashboardSessions({ ttlMs: 100, max: 3, now: () => now });
  const old = sessions.create();
  now = 50;
  const a = sessions.create();
  const b = sessions.create();
  now = 120; // `old` has expired, a and b have not
  const c = sessions.create();
  t.equal(sessions.size, 3);
  t.notOk(sessions.valid(old));
  t.ok(sessions.valid(a) && sessions.valid(b) && sessions.valid(c), 'the expired one made room');
  const d = sessions.create();
  t.equal(sessions.size, 3, 'never more than max');
  t.notOk(sessions.valid(a), 'full with live sessions: the oldest went');
  t.ok(sessions.valid(b) && sessions.valid(c) && sessions.valid(d));
});
