/**
 * Router rule 1 on a retry (the proxy's `exclude`: servers that refused this very request
 * before any byte was sent). The proxy retries only a partition assigned by that request
 * (reason partition-new), so an assignment whose server is excluded is the fresh one and
 * holds no data: it is placed anew (and re-assigned durably by the proxy). A pin is never
 * moved, and without `exclude` nothing changes. End to end: test/partition-failover.test.ts.
 */
import t from 'tap';
import { route } from '../src/routing/router.js';
import type { PartitionLookup, RoutingContext } from '../src/routing/types.js';
import { context, pool } from './helpers/routing.js';

const three = () => pool(['servoy-a', 'servoy-b', 'servoy-c'].map((id) => ({ id })));

function ctx(lookups: Record<string, PartitionLookup>): RoutingContext {
  return { ...context(), partitionOf: (key) => lookups[key], partitionCount: () => 0, sessionBackend: () => undefined };
}

const facts = (key: string) => ({ clientAddress: '10.9.9.9', affinityCookie: undefined, sessionId: undefined, partitionKey: key });

t.test('a fresh assignment whose server refused the request is placed anew, elsewhere', async (t) => {
  const snapshot = three();
  // Where a new "acme" would go, then as if that server refused its first request.
  const first = route(facts('acme'), snapshot, ctx({}));
  t.equal(first.kind === 'backend' && first.reason, 'partition-new');
  const refused = first.kind === 'backend' ? first.backend.id : '';
  const retried = route(facts('acme'), snapshot, ctx({ acme: { backend: refused, pinned: false } }), new Set([refused]));
  t.equal(retried.kind, 'backend', 'the retry has a server');
  if (retried.kind !== 'backend') return;
  t.not(retried.backend.id, refused, `not the one that refused (${refused})`);
  t.equal(retried.reason, 'partition-new', 'placed as a new partition');
  t.equal(retried.assignPartition, 'acme', 'to be assigned durably to the new server');

  // Both others refused too: nothing left.
  const none = route(facts('acme'), snapshot, ctx({ acme: { backend: retried.backend.id, pinned: false } }), new Set(['servoy-a', 'servoy-b', 'servoy-c']));
  t.equal(none.kind, 'unavailable', 'every server refused: unavailable');
});

t.test('pins and assignments without exclude are never placed anew', async (t) => {
  const snapshot = three();
  const pinned = route(facts('acme'), snapshot, ctx({ acme: { backend: 'servoy-b', pinned: true } }), new Set(['servoy-b']));
  t.same(pinned, { kind: 'unavailable', reason: 'partition-down' }, 'a pinned key whose server is excluded: 503, never elsewhere');
  const assigned = route(facts('acme'), snapshot, ctx({ acme: { backend: 'servoy-b', pinned: false } }));
  t.match(assigned, { kind: 'backend', reason: 'partition', backend: { id: 'servoy-b' } }, 'an assignment goes home');
  t.equal(assigned.kind === 'backend' ? assigned.assignPartition : 'x', undefined, 'and is not re-assigned');
  const other = route(facts('acme'), snapshot, ctx({ acme: { backend: 'servoy-b', pinned: false } }), new Set(['servoy-a']));
  t.match(other, { kind: 'backend', reason: 'partition', backend: { id: 'servoy-b' } }, 'excluding another server changes nothing');
  const down = route(facts('acme'), pool([{ id: 'servoy-a' }, { id: 'servoy-b', state: 'down' }, { id: 'servoy-c' }]), ctx({ acme: { backend: 'servoy-b', pinned: false } }));
  t.same(down, { kind: 'unavailable', reason: 'partition-down' }, 'an assignment whose server is down: 503');
});
