/**
 * Known-value pins for the placement hash. Every new session and every new partition is
 * placed by these functions: a change to any of them would silently move users to other
 * servers on upgrade, and make workers (or balancers) of two versions disagree. If one of
 * these fails, the change is a breaking one: it needs a migration story, not a new pin.
 */
import t from 'tap';
import { buildSnapshot } from '../src/pool/snapshot.js';
import { fmix32, hash32, rendezvousHash, rendezvousScore } from '../src/routing/hash.js';
import { route } from '../src/routing/router.js';
import type { RoutingContext } from '../src/routing/types.js';

t.test('hash32 (FNV-1a over UTF-16 code units, fmix32 finish) of known keys', async (t) => {
  const pins: [string, number][] = [
    ['', 2872998923],
    ['a', 444641715],
    ['127.0.0.1', 2377737407],
    ['10.0.0.57', 1009843740],
    ['2001:db8::1', 3849813818],
    ['acme', 2019603394],
    ['servoy-a', 1288276479],
    ['servoy-b', 3370836991],
    ['servoy-c', 3462909027],
    ['ünïcødé', 379909559],
    ['x'.repeat(300), 115736690],
  ];
  for (const [key, want] of pins) t.equal(hash32(key), want, `hash32(${JSON.stringify(key.length > 20 ? `${key.slice(0, 5)}...` : key)})`);
});

t.test('fmix32, rendezvousHash and rendezvousScore of known inputs', async (t) => {
  t.same([fmix32(0), fmix32(1), fmix32(0xffffffff)], [0, 1364076727, 2180083513]);
  t.equal(rendezvousHash(0, 0), 0);
  t.equal(rendezvousHash(1, 2), 232174035);
  t.equal(rendezvousHash(0xdeadbeef, 0x12345678), 3221769712);
  t.equal(rendezvousHash(hash32('10.0.0.57'), hash32('servoy-a')), 1584917342);
  t.equal(rendezvousScore(hash32('10.0.0.57'), hash32('servoy-a'), 1), 1.0030978823924255);
  t.equal(rendezvousScore(hash32('10.0.0.57'), hash32('servoy-b'), 2), 2.124533166926095);
  t.equal(rendezvousScore(hash32('acme'), hash32('servoy-c'), 0.5), 1.0484410820603258);
});

t.test('where new sessions from known addresses land in a known pool (weights 1,1,1,2)', async (t) => {
  const snapshot = buildSnapshot(
    ['servoy-a', 'servoy-b', 'servoy-c', 'servoy-d'].map((id, i) => ({ config: { id, url: `http://10.0.0.${i + 1}:8080`, weight: i === 3 ? 2 : 1 }, state: 'up' as const })),
    1,
  );
  // No load: pure weighted rendezvous.
  const ctx: RoutingContext = { verifyCookie: () => undefined, learnedBackend: () => undefined, activeSessions: () => 0, balanceFactor: 100 };
  const want = ['servoy-d', 'servoy-d', 'servoy-d', 'servoy-b', 'servoy-d', 'servoy-d', 'servoy-c', 'servoy-b', 'servoy-a', 'servoy-d', 'servoy-c', 'servoy-d', 'servoy-d', 'servoy-a', 'servoy-a', 'servoy-d'];
  const got = want.map((_, i) => {
    const decision = route({ clientAddress: `10.1.0.${i}`, affinityCookie: undefined, sessionId: undefined }, snapshot, ctx);
    return decision.kind === 'backend' ? decision.backend.id : decision.reason;
  });
  t.same(got, want);
});
