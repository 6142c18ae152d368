import t from 'tap';
import type { BackendState } from '../src/pool/snapshot.js';
import { route } from '../src/routing/router.js';
import type { PartitionLookup, RoutingContext } from '../src/routing/types.js';
import { codec, context, ids, pool, type BackendSpec } from './helpers/routing.js';

const CLIENT = 'client-0001';
const three = (states: Partial<Record<string, BackendState>> = {}): BackendSpec[] =>
  ['servoy-a', 'servoy-b', 'servoy-c'].map((id) => ({ id, state: states[id] ?? 'up' }));

function partitionContext(partitions: Record<string, PartitionLookup>, extra: { counts?: Record<string, number>; sessions?: Record<string, string>; loads?: Record<string, number> } = {}): RoutingContext {
  return {
    ...context({ loads: new Map(Object.entries(extra.loads ?? {})) }),
    partitionOf: (key) => partitions[key],
    partitionCount: (id) => extra.counts?.[id] ?? 0,
    sessionBackend: (clientId) => extra.sessions?.[clientId],
  };
}

const facts = (key: string | undefined, cookieBackend?: string) => ({
  clientAddress: '10.1.1.1',
  affinityCookie: cookieBackend === undefined ? undefined : codec.sign(CLIENT, cookieBackend),
  sessionId: undefined,
  partitionKey: key,
});

t.test('rule 1: assigned or pinned partitions go home while home serves, else 503', async (t) => {
  const cases = [
    { desc: 'assigned', states: {}, lookup: { backend: 'servoy-b', pinned: false }, cookie: undefined, want: 'servoy-b', reason: 'partition', setCookie: true },
    { desc: 'pinned', states: {}, lookup: { backend: 'servoy-c', pinned: true }, cookie: undefined, want: 'servoy-c', reason: 'partition', setCookie: true },
    { desc: 'cookie already names home: no new cookie', states: {}, lookup: { backend: 'servoy-b', pinned: false }, cookie: 'servoy-b', want: 'servoy-b', reason: 'partition', setCookie: false },
    { desc: 'a cookie for another server does not win over the partition', states: {}, lookup: { backend: 'servoy-b', pinned: false }, cookie: 'servoy-a', want: 'servoy-b', reason: 'partition', setCookie: true },
    { desc: 'home draining still serves its partitions', states: { 'servoy-b': 'draining' }, lookup: { backend: 'servoy-b', pinned: false }, cookie: undefined, want: 'servoy-b', reason: 'partition', setCookie: true },
    { desc: 'home in maintenance still serves', states: { 'servoy-b': 'maintenance' }, lookup: { backend: 'servoy-b', pinned: false }, cookie: undefined, want: 'servoy-b', reason: 'partition', setCookie: true },
    { desc: 'home down: 503, never elsewhere', states: { 'servoy-b': 'down' }, lookup: { backend: 'servoy-b', pinned: false }, cookie: undefined, want: 'partition-down' },
    { desc: 'home disabled: 503', states: { 'servoy-b': 'disabled' }, lookup: { backend: 'servoy-b', pinned: false }, cookie: undefined, want: 'partition-down' },
    { desc: 'home not in the pool: 503', states: {}, lookup: { backend: 'servoy-z', pinned: false }, cookie: undefined, want: 'partition-down' },
  ] as const;
  for (const c of cases) {
    const d = route(facts('acme', c.cookie), pool(three(c.states)), partitionContext({ acme: c.lookup }));
    if (c.want === 'partition-down') {
      t.same(d, { kind: 'unavailable', reason: 'partition-down' }, c.desc);
    } else {
      t.equal(d.kind === 'backend' && d.backend.id, c.want, c.desc);
      t.equal(d.kind === 'backend' && d.reason, c.reason, `${c.desc}: reason`);
      t.equal(d.kind === 'backend' && d.setCookie, c.setCookie, `${c.desc}: setCookie`);
    }
  }
});

t.test('moved with --drain: only a live session on the old server stays there', async (t) => {
  const moved = { acme: { backend: 'servoy-b', pinned: false, previous: 'servoy-a' } };
  const live = route(facts('acme', 'servoy-a'), pool(three()), partitionContext(moved, { sessions: { [CLIENT]: 'servoy-a' } }));
  t.equal(live.kind === 'backend' && live.backend.id, 'servoy-a');
  t.equal(live.kind === 'backend' && live.reason, 'partition-previous');
  const ended = route(facts('acme', 'servoy-a'), pool(three()), partitionContext(moved, { sessions: {} }));
  t.equal(ended.kind === 'backend' && ended.backend.id, 'servoy-b', 'session ended: the new home');
  const noCookie = route(facts('acme'), pool(three()), partitionContext(moved, { sessions: { [CLIENT]: 'servoy-a' } }));
  t.equal(noCookie.kind === 'backend' && noCookie.backend.id, 'servoy-b', 'a new client: the new home');
  const oldDown = route(facts('acme', 'servoy-a'), pool(three({ 'servoy-a': 'down' })), partitionContext(moved, { sessions: { [CLIENT]: 'servoy-a' } }));
  t.equal(oldDown.kind === 'backend' && oldDown.backend.id, 'servoy-b', 'old server down: the new home');
});

t.test('new partitions: hashed on the key, bounded by partition counts, assigned', async (t) => {
  const d = route(facts('globex'), pool(three()), partitionContext({}));
  t.equal(d.kind, 'backend');
  t.equal(d.kind === 'backend' && d.reason, 'partition-new');
  t.equal(d.kind === 'backend' && d.assignPartition, 'globex');
  const again = route({ ...facts('globex'), clientAddress: '10.9.9.9' }, pool(three()), partitionContext({}));
  t.equal(again.kind === 'backend' && again.backend.id, d.kind === 'backend' && d.backend.id, 'the key decides, not the client address');

  // Bounded load on partition counts: 300 new keys placed one after another stay within the cap.
  const counts: Record<string, number> = {};
  const snapshot = pool(ids(3));
  for (let i = 0; i < 300; i++) {
    const r = route(facts(`tenant-${i}`), snapshot, partitionContext({}, { counts }));
    if (r.kind !== 'backend') throw new Error('expected a backend');
    counts[r.backend.id] = (counts[r.backend.id] ?? 0) + 1;
  }
  for (const n of Object.values(counts)) t.ok(n <= Math.ceil(1.25 * 100) + 1, `within the cap: ${n}`);

  const full = route(facts('initech'), pool([{ id: 'servoy-a', maxSessions: 2 }, { id: 'servoy-b', state: 'draining' }]), partitionContext({}, { loads: { 'servoy-a': 2 } }));
  t.same(full, { kind: 'unavailable', reason: 'no-backend' }, 'a backend at maxSessions takes no new partition; draining takes none');
  const none = route(facts(undefined), pool(three()), partitionContext({}));
  t.equal(none.kind === 'backend' && none.reason, 'new-session', 'no key: session rules');
});
