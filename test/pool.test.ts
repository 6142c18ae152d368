import t from 'tap';
import { Pool, deriveState, type PoolChange } from '../src/pool/pool.js';

const backend = (id: string) => ({ id, url: `http://127.0.0.1:${9000 + id.length}`, weight: 1, route: id });

t.test('deriveState: one table for every combination that matters', async (t) => {
  const cases = [
    { admin: 'ready', healthy: true, drained: false, maintenance: false, want: 'up' },
    { admin: 'ready', healthy: true, drained: false, maintenance: true, want: 'maintenance' },
    { admin: 'ready', healthy: false, drained: false, maintenance: true, want: 'down' },
    { admin: 'draining', healthy: true, drained: false, maintenance: false, want: 'draining' },
    { admin: 'draining', healthy: true, drained: true, maintenance: false, want: 'drained' },
    { admin: 'draining', healthy: true, drained: false, maintenance: true, want: 'draining' },
    { admin: 'draining', healthy: false, drained: false, maintenance: false, want: 'down' },
    { admin: 'disabled', healthy: false, drained: false, maintenance: false, want: 'disabled' },
    { admin: 'disabled', healthy: true, drained: false, maintenance: true, want: 'disabled' },
  ] as const;
  for (const c of cases) t.equal(deriveState(c), c.want, JSON.stringify(c));
});

t.test('every real change publishes one new snapshot; no-ops publish none', async (t) => {
  const pool = new Pool([backend('a'), backend('bb')], () => 1000);
  const changes: PoolChange[] = [];
  pool.on('change', (c) => changes.push(c));
  const v0 = pool.snapshot.version;
  t.equal(pool.snapshot.byId.get('a')!.state, 'up', 'up from the start');
  t.notOk(pool.setHealth('a', true, 'x'), 'already healthy: no change');
  t.equal(pool.snapshot.version, v0);
  t.ok(pool.setAdmin('a', 'draining', 'admin'));
  t.equal(pool.snapshot.byId.get('a')!.state, 'draining');
  t.equal(pool.member('a')!.drainingSince, 1000);
  t.notOk(pool.snapshot.byId.get('a')!.acceptsNew, 'draining takes no new sessions');
  t.ok(pool.snapshot.byId.get('a')!.servesExisting, 'but serves its sessions');
  t.ok(pool.setDrained('a', true, 'empty'));
  t.equal(pool.snapshot.byId.get('a')!.state, 'drained');
  t.ok(pool.setAdmin('a', 'ready', 'undrain'));
  t.equal(pool.member('a')!.drained, false, 'undrain forgets drained');
  t.equal(pool.member('a')!.drainingSince, undefined);
  t.notOk(pool.setDrained('a', true, 'x'), 'drained only applies while draining');
  t.ok(pool.setMaintenance('bb', true, 'servoy 503'));
  t.equal(pool.snapshot.byId.get('bb')!.state, 'maintenance');
  t.same(pool.snapshot.acceptingNew.map((b) => b.id), ['a']);
  t.ok(pool.setAdmin('bb', 'disabled', 'admin'));
  t.notOk(pool.snapshot.byId.get('bb')!.servesExisting, 'disabled serves nobody');
  t.same(
    changes.map((c) => `${c.backendId}:${c.from}->${c.to}`),
    ['a:up->draining', 'a:draining->drained', 'a:drained->up', 'bb:up->maintenance', 'bb:maintenance->disabled'],
  );
  t.ok(changes.every((c, i) => c.snapshot.version === v0 + i + 1), 'one snapshot per change');
});

t.test('add, update, remove', async (t) => {
  const pool = new Pool([backend('a')]);
  t.throws(() => pool.add(backend('a'), 'x'), /already exists/);
  pool.add(backend('c'), 'admin');
  t.same(pool.configs().map((b) => b.id), ['a', 'c']);
  t.notOk(pool.update(backend('c'), 'same'), 'identical config: no change');
  t.ok(pool.update({ ...backend('c'), weight: 5 }, 'reweight'));
  t.equal(pool.snapshot.byId.get('c')!.weight, 5);
  t.notOk(pool.update(backend('zz'), 'x'), 'unknown id');
  t.ok(pool.remove('c', 'admin'));
  t.notOk(pool.remove('c', 'admin'));
  t.notOk(pool.has('c'));
  t.notOk(pool.setHealth('nope', false, 'x'), 'unknown ids are ignored');
  const restored = new Pool([backend('a')], () => 5000);
  restored.setAdmin('a', 'draining', 'restored', 1234);
  t.equal(restored.member('a')!.drainingSince, 1234, 'a restored drain keeps its clock');
});
