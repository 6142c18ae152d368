/**
 * The pure parts of the Redis state store: the shared pool read as records against an
 * instance's config file (and back: only the differences are written), and the partition
 * table that mirrors the shared copy and says which keys changed.
 */
import t from 'tap';
import type { BackendConfig } from '../src/config/schema.js';
import { RedisPartitionTable } from '../src/state/redis/redis-partition-table.js';
import type { RedisPartitions, SharedPartition } from '../src/state/redis/redis-partitions.js';
import { poolWrites, recordsFromSnapshot } from '../src/state/redis/shared-records.js';

const b = (id: string, weight = 1): BackendConfig => ({ id, url: `http://127.0.0.1:1/${id}`, weight, route: id }) as BackendConfig;

t.test('recordsFromSnapshot: added, removed, run-time weights and admin states against the config file', async (t) => {
  const config = [b('a'), b('b', 2)];
  const snapshot = { version: 3, backends: [b('a', 5), b('c')], admin: { a: { admin: 'draining' as const, since: 7 } } };
  t.same(recordsFromSnapshot(config, snapshot), { added: [b('c')], removed: ['b'], admin: { a: { admin: 'draining', since: 7 } }, weights: { a: 5 } });
  t.same(recordsFromSnapshot(config, { version: 1, backends: config, admin: {} }), { added: [], removed: [], admin: {}, weights: {} }, 'the seeded pool: nothing recorded');
});

t.test('poolWrites: only what a change of records makes different', async (t) => {
  const config = [b('a'), b('b')];
  const none = { added: [], removed: [], admin: {}, weights: {} };
  t.same(poolWrites({ config, records: none }, { config, records: none }), [], 'nothing changed, nothing written');
  t.same(poolWrites({ config, records: none }, { config, records: { ...none, admin: { a: { admin: 'disabled' } } } }), [{ op: 'set-admin', id: 'a', record: { admin: 'disabled' } }], 'an admin state');
  t.same(poolWrites({ config, records: { ...none, admin: { a: { admin: 'disabled' } } } }, { config, records: none }), [{ op: 'set-admin', id: 'a', record: undefined }], 'made ready again');
  t.same(poolWrites({ config, records: none }, { config, records: { ...none, weights: { b: 4 } } }), [{ op: 'set-backend', backend: b('b', 4) }], 'a weight');
  t.same(poolWrites({ config, records: none }, { config, records: { ...none, added: [b('c')] } }), [{ op: 'set-backend', backend: b('c') }], 'an addition');
  t.same(
    poolWrites({ config, records: { ...none, admin: { b: { admin: 'draining' } } } }, { config, records: { ...none, removed: ['b'], admin: {} } }),
    [{ op: 'remove-backend', id: 'b' }],
    'a removal (its admin state goes with it)',
  );
  t.same(poolWrites({ config, records: none }, { config: [b('a')], records: none }), [{ op: 'remove-backend', id: 'b' }], 'a reloaded config file without b');
});

t.test('RedisPartitionTable mirrors the shared copy and reports the keys that changed', async (t) => {
  let copy = new Map<string, SharedPartition>([['acme', { backend: 'a', assignedAt: 1 }]]);
  const shared = { snapshot: () => copy } as unknown as RedisPartitions;
  const table = new RedisPartitionTable(shared);
  t.equal(table.size, 1);
  t.same(table.get('acme'), { key: 'acme', backend: 'a', assignedAt: 1 });
  t.same(table.sync(), [], 'nothing new');
  copy = new Map([
    ['acme', { backend: 'b', assignedAt: 1, previous: 'a', movedAt: 2, drainPrevious: true }],
    ['globex', { backend: 'a', assignedAt: 3 }],
  ]);
  t.same(table.sync().sort(), ['acme', 'globex'], 'a move and an assignment');
  t.same([...table.counts()].sort(), [['a', 1], ['b', 1]]);
  t.same(table.entries().map((r) => r.key), ['acme', 'globex'], 'in key order');
  t.same(table.entries(1, 1).map((r) => r.key), ['globex']);
  table.touch('globex');
  t.ok(table.lastSeen('globex') !== undefined);
  copy = new Map([['globex', { backend: 'a', assignedAt: 3 }]]);
  t.same(table.sync(), ['acme'], 'a deletion');
  t.equal(table.get('acme'), undefined);
  t.same([...table.counts()], [['a', 1]]);
  t.same(table.entries().map((r) => r.key), ['globex']);
});
