/**
 * How many client addresses change backend when the pool changes, against the ideal k/N
 * of consistent hashing: adding an (N+1)th backend should move 1/(N+1) of the keys, all to
 * the new one; removing one of N should move 1/N, exactly those it held. Bounded load is
 * out of the picture here (no active sessions), so this measures the hashing itself.
 */
import t from 'tap';
import type { PoolSnapshot } from '../src/pool/snapshot.js';
import { route } from '../src/routing/router.js';
import { context, ids, pool } from './helpers/routing.js';

const KEYS = 100_000;
const ctx = context();

function assignments(snapshot: PoolSnapshot): string[] {
  const out = new Array<string>(KEYS);
  for (let i = 0; i < KEYS; i++) {
    const got = route({ clientAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, affinityCookie: undefined, sessionId: undefined }, snapshot, ctx);
    if (got.kind !== 'backend') throw new Error('expected a backend');
    out[i] = got.backend.id;
  }
  return out;
}

for (const n of [3, 5, 10, 50]) {
  t.test(`${n} backends`, async (t) => {
    const specs = ids(n);
    const base = assignments(pool(specs));

    // Add one backend.
    const added = assignments(pool([...specs, { id: 'servoy-new' }]));
    let moved = 0;
    let strayAdd = 0;
    for (let i = 0; i < KEYS; i++) {
      if (added[i] === base[i]) continue;
      moved++;
      if (added[i] !== 'servoy-new') strayAdd++;
    }
    const idealAdd = 1 / (n + 1);
    const shareAdd = moved / KEYS;
    t.ok(shareAdd <= 1.1 * idealAdd, `add: ${(shareAdd * 100).toFixed(2)}% moved, ideal ${(idealAdd * 100).toFixed(2)}% (x${(shareAdd / idealAdd).toFixed(3)})`);
    t.equal(strayAdd, 0, 'add: every moved key went to the new backend');

    // Remove one backend (the middle one).
    const removedId = specs[n >> 1]!.id;
    const removed = assignments(pool(specs.filter((s) => s.id !== removedId)));
    moved = 0;
    let strayRemove = 0;
    for (let i = 0; i < KEYS; i++) {
      if (removed[i] === base[i]) continue;
      moved++;
      if (base[i] !== removedId) strayRemove++;
    }
    const idealRemove = 1 / n;
    const shareRemove = moved / KEYS;
    t.ok(shareRemove <= 1.1 * idealRemove, `remove: ${(shareRemove * 100).toFixed(2)}% moved, ideal ${(idealRemove * 100).toFixed(2)}% (x${(shareRemove / idealRemove).toFixed(3)})`);
    t.equal(strayRemove, 0, 'remove: only the removed backend\'s keys moved');

    // Draining (no longer accepting new sessions) moves new-session placement the same way as removal.
    const drained = assignments(pool(specs.map((s) => (s.id === removedId ? { ...s, state: 'draining' as const } : s))));
    t.same(drained, removed, 'draining a backend places new sessions as if it were removed');
  });
}
