import t from 'tap';
import type { BackendState } from '../src/pool/snapshot.js';
import { route } from '../src/routing/router.js';
import type { PoolSnapshot } from '../src/pool/snapshot.js';
import type { RequestFacts, RouteReason, RouteTrace, RoutingContext } from '../src/routing/types.js';
import { codec, context, ids, pool, type BackendSpec } from './helpers/routing.js';

const CLIENT = 'client-0001';
const cookieFor = (backendId: string) => codec.sign(CLIENT, backendId);

/** Three backends; 'servoy-b' has a custom Tomcat route. */
const three = (states: Partial<Record<string, BackendState>> = {}): BackendSpec[] => [
  { id: 'servoy-a', state: states['servoy-a'] ?? 'up' },
  { id: 'servoy-b', state: states['servoy-b'] ?? 'up', route: 'jvm-b' },
  { id: 'servoy-c', state: states['servoy-c'] ?? 'up' },
];

interface Case {
  desc: string;
  backends: BackendSpec[];
  facts: Partial<RequestFacts>;
  learned?: Record<string, string>;
  loads?: Record<string, number>;
  exclude?: string[];
  want: { backend?: string; notBackend?: string[]; reason: RouteReason | 'no-backend' | 'pool-full' | 'failover-hold'; setCookie?: boolean; clientId?: string | undefined };
}

const cases: Case[] = [
  // Rule 2a: the affinity cookie.
  { desc: 'valid cookie', backends: three(), facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-b', reason: 'affinity-cookie', setCookie: false, clientId: CLIENT } },
  { desc: 'cookie beats session suffix', backends: three(), facts: { affinityCookie: cookieFor('servoy-c'), sessionId: 'x.jvm-b' }, want: { backend: 'servoy-c', reason: 'affinity-cookie', setCookie: false } },
  { desc: 'draining backend keeps its cookie sessions', backends: three({ 'servoy-b': 'draining' }), facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-b', reason: 'affinity-cookie', setCookie: false } },
  { desc: 'drained backend still serves a late one', backends: three({ 'servoy-b': 'drained' }), facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-b', reason: 'affinity-cookie' } },
  { desc: 'maintenance backend keeps its cookie sessions', backends: three({ 'servoy-b': 'maintenance' }), facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-b', reason: 'affinity-cookie' } },
  { desc: 'cookie backend down -> replaced', backends: three({ 'servoy-b': 'down' }), facts: { affinityCookie: cookieFor('servoy-b') }, want: { notBackend: ['servoy-b'], reason: 'replaced', setCookie: true, clientId: CLIENT } },
  { desc: 'cookie backend disabled -> replaced', backends: three({ 'servoy-b': 'disabled' }), facts: { affinityCookie: cookieFor('servoy-b') }, want: { notBackend: ['servoy-b'], reason: 'replaced', setCookie: true, clientId: CLIENT } },
  { desc: 'cookie backend excluded -> replaced', backends: three(), facts: { affinityCookie: cookieFor('servoy-b') }, exclude: ['servoy-b'], want: { notBackend: ['servoy-b'], reason: 'replaced', setCookie: true } },
  { desc: 'forged cookie ignored', backends: three(), facts: { affinityCookie: `${CLIENT}.servoy-b.${'A'.repeat(22)}` }, want: { reason: 'new-session', setCookie: true, clientId: undefined } },
  { desc: 'garbage cookie ignored', backends: three(), facts: { affinityCookie: 'hello' }, want: { reason: 'new-session', setCookie: true, clientId: undefined } },
  { desc: 'unknown backend in cookie ignored (client id kept)', backends: three(), facts: { affinityCookie: cookieFor('servoy-z') }, want: { reason: 'new-session', setCookie: true, clientId: CLIENT } },
  { desc: 'unknown cookie backend falls to session suffix', backends: three(), facts: { affinityCookie: cookieFor('servoy-z'), sessionId: 'x.jvm-b' }, want: { backend: 'servoy-b', reason: 'route-suffix', setCookie: true, clientId: CLIENT } },
  { desc: 'forged cookie falls to session suffix', backends: three(), facts: { affinityCookie: 'junk', sessionId: 'x.servoy-c' }, want: { backend: 'servoy-c', reason: 'route-suffix', setCookie: true, clientId: undefined } },

  // Rule 2, failoverDelay: a down backend within the delay holds its sessions (503), past it they are placed anew.
  { desc: 'cookie backend down, within failoverDelay -> held', backends: [{ id: 'servoy-a' }, { id: 'servoy-b', state: 'down', holding: true }], facts: { affinityCookie: cookieFor('servoy-b') }, want: { reason: 'failover-hold' } },
  { desc: 'cookie backend down, delay passed -> replaced', backends: [{ id: 'servoy-a' }, { id: 'servoy-b', state: 'down', holding: false }], facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-a', reason: 'replaced' } },
  { desc: 'route suffix on a held backend -> held', backends: [{ id: 'servoy-a', state: 'down', holding: true }, { id: 'servoy-b' }], facts: { sessionId: 'X.servoy-a' }, want: { reason: 'failover-hold' } },
  { desc: 'learned session on a held backend -> held', backends: [{ id: 'servoy-a' }, { id: 'servoy-c', state: 'down', holding: true }], facts: { sessionId: 'S1' }, learned: { S1: 'servoy-c' }, want: { reason: 'failover-hold' } },
  { desc: 'holding counts only while down (disabled is placed anew at once)', backends: [{ id: 'servoy-a' }, { id: 'servoy-b', state: 'disabled', holding: true }], facts: { affinityCookie: cookieFor('servoy-b') }, want: { backend: 'servoy-a', reason: 'replaced' } },
  { desc: 'a held backend that refused this request (excluded) -> replaced', backends: [{ id: 'servoy-a' }, { id: 'servoy-b', state: 'down', holding: true }], facts: { affinityCookie: cookieFor('servoy-b') }, exclude: ['servoy-b'], want: { backend: 'servoy-a', reason: 'replaced' } },
  { desc: 'new sessions never go to a held backend', backends: [{ id: 'servoy-a' }, { id: 'servoy-b', state: 'down', holding: true }], facts: {}, want: { backend: 'servoy-a', reason: 'new-session' } },

  // Rule 2b: Tomcat route suffix.
  { desc: 'route suffix (route defaults to id)', backends: three(), facts: { sessionId: 'ABC123.servoy-a' }, want: { backend: 'servoy-a', reason: 'route-suffix', setCookie: true } },
  { desc: 'route suffix (custom route)', backends: three(), facts: { sessionId: 'ABC123.jvm-b' }, want: { backend: 'servoy-b', reason: 'route-suffix', setCookie: true } },
  { desc: 'route suffix matches route, not id', backends: three(), facts: { sessionId: 'ABC123.servoy-b' }, want: { reason: 'new-session' } },
  { desc: 'route suffix on draining backend', backends: three({ 'servoy-a': 'draining' }), facts: { sessionId: 'ABC123.servoy-a' }, want: { backend: 'servoy-a', reason: 'route-suffix' } },
  { desc: 'route suffix on maintenance backend', backends: three({ 'servoy-a': 'maintenance' }), facts: { sessionId: 'ABC123.servoy-a' }, want: { backend: 'servoy-a', reason: 'route-suffix' } },
  { desc: 'route suffix on down backend -> replaced', backends: three({ 'servoy-a': 'down' }), facts: { sessionId: 'ABC123.servoy-a' }, want: { notBackend: ['servoy-a'], reason: 'replaced', setCookie: true } },
  { desc: 'route suffix on disabled backend -> replaced', backends: three({ 'servoy-a': 'disabled' }), facts: { sessionId: 'ABC123.servoy-a' }, want: { notBackend: ['servoy-a'], reason: 'replaced' } },
  { desc: 'route suffix excluded -> replaced', backends: three(), facts: { sessionId: 'ABC123.servoy-a' }, exclude: ['servoy-a'], want: { notBackend: ['servoy-a'], reason: 'replaced' } },
  { desc: 'unknown route suffix, nothing learned -> new', backends: three(), facts: { sessionId: 'ABC123.elsewhere' }, want: { reason: 'new-session', setCookie: true } },
  { desc: 'empty session id -> new', backends: three(), facts: { sessionId: '' }, want: { reason: 'new-session' } },

  // Rule 2c: learned sessions.
  { desc: 'learned session', backends: three(), facts: { sessionId: 'S1' }, learned: { S1: 'servoy-c' }, want: { backend: 'servoy-c', reason: 'learned-session', setCookie: true } },
  { desc: 'learned session with unknown suffix', backends: three(), facts: { sessionId: 'S1.zzz' }, learned: { 'S1.zzz': 'servoy-c' }, want: { backend: 'servoy-c', reason: 'learned-session' } },
  { desc: 'learned session on draining backend', backends: three({ 'servoy-c': 'draining' }), facts: { sessionId: 'S1' }, learned: { S1: 'servoy-c' }, want: { backend: 'servoy-c', reason: 'learned-session' } },
  { desc: 'learned session on down backend -> replaced', backends: three({ 'servoy-c': 'down' }), facts: { sessionId: 'S1' }, learned: { S1: 'servoy-c' }, want: { notBackend: ['servoy-c'], reason: 'replaced' } },
  { desc: 'learned backend removed from pool -> new', backends: three(), facts: { sessionId: 'S1' }, learned: { S1: 'servoy-gone' }, want: { reason: 'new-session' } },
  { desc: 'learned session keeps cookie client id', backends: three(), facts: { sessionId: 'S1', affinityCookie: cookieFor('servoy-z') }, learned: { S1: 'servoy-a' }, want: { backend: 'servoy-a', reason: 'learned-session', clientId: CLIENT } },

  // Rule 3: new sessions.
  { desc: 'new session never lands on draining', backends: three({ 'servoy-a': 'draining', 'servoy-b': 'draining' }), facts: {}, want: { backend: 'servoy-c', reason: 'new-session', setCookie: true, clientId: undefined } },
  { desc: 'new session never lands on maintenance', backends: three({ 'servoy-a': 'maintenance', 'servoy-c': 'maintenance' }), facts: {}, want: { backend: 'servoy-b', reason: 'new-session' } },
  { desc: 'new session never lands on drained/down/disabled', backends: three({ 'servoy-a': 'drained', 'servoy-b': 'down', 'servoy-c': 'disabled' }), facts: {}, want: { reason: 'no-backend' } },
  { desc: 'replaced with nowhere to go', backends: three({ 'servoy-a': 'down', 'servoy-b': 'draining', 'servoy-c': 'disabled' }), facts: { affinityCookie: cookieFor('servoy-a') }, want: { reason: 'no-backend' } },
  { desc: 'exclude skips a backend', backends: three({ 'servoy-a': 'draining' }), facts: {}, exclude: ['servoy-b'], want: { backend: 'servoy-c', reason: 'new-session' } },
  { desc: 'exclude all -> no-backend', backends: three(), facts: {}, exclude: ['servoy-a', 'servoy-b', 'servoy-c'], want: { reason: 'no-backend' } },
  {
    desc: 'maxSessions reached is skipped',
    backends: [{ id: 'servoy-a', maxSessions: 2 }, { id: 'servoy-b', maxSessions: 5 }],
    facts: {},
    loads: { 'servoy-a': 2, 'servoy-b': 1 },
    want: { backend: 'servoy-b', reason: 'new-session' },
  },
  {
    desc: 'all at maxSessions -> pool-full',
    backends: [{ id: 'servoy-a', maxSessions: 2 }, { id: 'servoy-b', maxSessions: 5 }],
    facts: {},
    loads: { 'servoy-a': 2, 'servoy-b': 5 },
    want: { reason: 'pool-full' },
  },
  {
    desc: 'maxSessions does not stop an existing session',
    backends: [{ id: 'servoy-a', maxSessions: 2 }, { id: 'servoy-b' }],
    facts: { affinityCookie: codec.sign(CLIENT, 'servoy-a') },
    loads: { 'servoy-a': 2 },
    want: { backend: 'servoy-a', reason: 'affinity-cookie' },
  },
  {
    desc: 'bounded load: an overloaded first choice is passed over',
    backends: [{ id: 'servoy-a' }, { id: 'servoy-b' }],
    facts: {},
    // cap = ceil(1.25 * 11 / 2) = 7: a backend holding 7 cannot take an 8th.
    loads: { 'servoy-a': 7, 'servoy-b': 3 },
    want: { backend: 'servoy-b', reason: 'new-session' },
  },
  {
    desc: 'bounded load: mirrored',
    backends: [{ id: 'servoy-a' }, { id: 'servoy-b' }],
    facts: {},
    loads: { 'servoy-a': 3, 'servoy-b': 7 },
    want: { backend: 'servoy-a', reason: 'new-session' },
  },
];

t.test('route: table', async (t) => {
  for (const c of cases) {
    const snapshot = pool(c.backends);
    const ctx = context({ loads: new Map(Object.entries(c.loads ?? {})), learned: new Map(Object.entries(c.learned ?? {})) });
    const facts: RequestFacts = { clientAddress: '192.0.2.10', affinityCookie: undefined, sessionId: undefined, ...c.facts };
    const got = route(facts, snapshot, ctx, c.exclude === undefined ? undefined : new Set(c.exclude));
    if (c.want.reason === 'no-backend' || c.want.reason === 'pool-full' || c.want.reason === 'failover-hold') {
      t.same(got, { kind: 'unavailable', reason: c.want.reason }, c.desc);
      continue;
    }
    if (got.kind !== 'backend') {
      t.fail(`${c.desc}: got ${JSON.stringify(got)}`);
      continue;
    }
    t.equal(got.reason, c.want.reason, `${c.desc}: reason`);
    if (c.want.backend !== undefined) t.equal(got.backend.id, c.want.backend, `${c.desc}: backend`);
    for (const not of c.want.notBackend ?? []) t.not(got.backend.id, not, `${c.desc}: not ${not}`);
    t.ok(got.backend.acceptsNew || got.reason !== 'new-session', `${c.desc}: new sessions only on backends accepting them`);
    if (got.reason === 'new-session' || got.reason === 'replaced') {
      t.ok(got.backend.acceptsNew, `${c.desc}: placed on a backend accepting new sessions`);
      for (const ex of c.exclude ?? []) t.not(got.backend.id, ex, `${c.desc}: excluded ${ex} skipped`);
    }
    if (c.want.setCookie !== undefined) t.equal(got.setCookie, c.want.setCookie, `${c.desc}: setCookie`);
    if ('clientId' in c.want) t.equal(got.clientId, c.want.clientId, `${c.desc}: clientId`);
  }
});

/** traced routes a cookie-less request from `address` with a trace: the decision and the candidates placement saw. */
function traced(address: string, snapshot: PoolSnapshot, ctx: RoutingContext, exclude?: ReadonlySet<string>) {
  const trace: RouteTrace = { steps: [] };
  const decision = route({ clientAddress: address, affinityCookie: undefined, sessionId: undefined }, snapshot, ctx, exclude, trace);
  return { decision, candidates: trace.candidates ?? [], steps: trace.steps };
}

t.test('the fast path agrees with the traced ranking (every candidate scored by weightedScore, highest first)', async (t) => {
  const ctx = context();
  const weighted = pool(ids(30).map((b, i) => ({ ...b, weight: [1, 2, 5, 10][i % 4]! })));
  for (let i = 0; i < 2000; i++) {
    const address = `198.51.100.${i >> 4}:${i}`;
    const { decision, candidates } = traced(address, weighted, ctx);
    if (decision.kind !== 'backend' || decision.backend.id !== candidates[0]!.id) {
      t.fail(`mixed weights: the fast path and the ranking disagree for ${address}`);
      return;
    }
  }
  // Many distinct weights, and whole weight classes excluded.
  const manyWeights = pool(ids(24).map((b, i) => ({ ...b, weight: 1 + (i % 12) })));
  const exclude = new Set(['servoy-0', 'servoy-12', 'servoy-5']); // weights 1 (both) and 6
  for (let i = 0; i < 2000; i++) {
    const address = `2001:db8::${i.toString(16)}`;
    const { decision, candidates } = traced(address, manyWeights, ctx, exclude);
    const first = candidates.find((c) => c.skipped === undefined)!;
    if (decision.kind !== 'backend' || decision.backend.id !== first.id || exclude.has(decision.backend.id)) {
      t.fail(`12 weights: the fast path and the ranking disagree for ${address}`);
      return;
    }
  }
  const snapshot = pool(ids(20));
  for (let i = 0; i < 500; i++) {
    const facts: RequestFacts = { clientAddress: `198.51.100.${i}`, affinityCookie: undefined, sessionId: undefined };
    const a = route(facts, snapshot, ctx);
    const b = traced(facts.clientAddress, snapshot, ctx);
    if (a.kind !== 'backend' || b.decision.kind !== 'backend') throw new Error('expected a backend');
    if (a.backend !== b.decision.backend || b.candidates[0]!.id !== a.backend.id || b.candidates[0]!.fits !== true) {
      t.fail(`disagreement for ${facts.clientAddress}`);
      return;
    }
  }
  const { candidates, steps } = traced('198.51.100.1', snapshot, ctx);
  t.equal(candidates.length, 20);
  for (let i = 1; i < candidates.length; i++) t.ok(candidates[i - 1]!.score >= candidates[i]!.score, 'sorted by score');
  t.match(steps.map((s) => [s.rule, s.outcome]), [['affinity-cookie', 'skipped'], ['route-suffix', 'skipped'], ['new-session', 'applied']], 'every rule tried is in the trace');
  const without = traced('198.51.100.1', snapshot, ctx, new Set([candidates[0]!.id]));
  t.equal(without.decision.kind === 'backend' && without.decision.backend.id, candidates[1]!.id, 'exclude drops the first choice');
  t.match(without.candidates.find((c) => c.id === candidates[0]!.id), { skipped: 'excluded', fits: false });
});

t.test('the trace explains a full first choice', async (t) => {
  const snapshot = pool([{ id: 'servoy-a', maxSessions: 1 }, { id: 'servoy-b', maxSessions: 1 }, { id: 'servoy-c' }]);
  const first = traced('203.0.113.5', snapshot, context()).candidates[0]!.id;
  const ctx = context({ loads: new Map([[first, 1]]), balanceFactor: 100 });
  if (first === 'servoy-c') ctx.loads.set(first, 1000); // not bounded by maxSessions: overload it
  const { decision, candidates } = traced('203.0.113.5', snapshot, ctx);
  t.equal(candidates[0]!.fits, false);
  t.equal(decision.kind === 'backend' && decision.backend.id, candidates.find((r) => r.fits)!.id, 'route takes the first that fits');
});

/** place simulates `count` new sessions arriving one after another, each counted as active at once. */
function placeSequentially(specs: BackendSpec[], count: number, address: (i: number) => string, balanceFactor: number) {
  const snapshot = pool(specs);
  const ctx = context({ balanceFactor });
  const totalWeight = snapshot.acceptingNew.reduce((sum, b) => sum + b.weight, 0);
  let worst = 0; // largest load / cap seen
  let violations = 0;
  for (let i = 0; i < count; i++) {
    const got = route({ clientAddress: address(i), affinityCookie: undefined, sessionId: undefined }, snapshot, ctx);
    if (got.kind !== 'backend') throw new Error(`unexpected ${JSON.stringify(got)}`);
    ctx.loads.set(got.backend.id, (ctx.loads.get(got.backend.id) ?? 0) + 1);
    const total = i + 1;
    for (const b of snapshot.acceptingNew) {
      const load = ctx.loads.get(b.id) ?? 0;
      const cap = Math.ceil((balanceFactor * total * b.weight) / totalWeight);
      if (load > cap) violations++;
      worst = Math.max(worst, load / cap);
    }
  }
  return { loads: ctx.loads, violations, worst };
}

t.test('bounded load: no backend ever exceeds its cap', async (t) => {
  const table: { desc: string; specs: BackendSpec[]; address: (i: number) => string; balanceFactor: number }[] = [
    { desc: 'one address (everyone behind one NAT), 5 backends', specs: ids(5), address: () => '192.0.2.1', balanceFactor: 1.25 },
    { desc: 'four addresses, 10 weighted backends', specs: ids(10).map((b, i) => ({ ...b, weight: 1 + (i % 3) })), address: (i) => `192.0.2.${i % 4}`, balanceFactor: 1.25 },
    { desc: 'many addresses, 7 backends, tight factor', specs: ids(7), address: (i) => `10.1.${i >> 8}.${i & 255}`, balanceFactor: 1 },
    { desc: 'many addresses, 3 backends, loose factor', specs: ids(3), address: (i) => `10.2.${i >> 8}.${i & 255}`, balanceFactor: 2 },
  ];
  for (const c of table) {
    const { violations, loads, worst } = placeSequentially(c.specs, 10_000, c.address, c.balanceFactor);
    t.equal(violations, 0, `${c.desc}: never above cap (worst load/cap ${worst.toFixed(3)})`);
    t.equal([...loads.values()].reduce((a, b) => a + b, 0), 10_000, `${c.desc}: every session placed`);
  }
});

t.test('weights spread new sessions proportionally', async (t) => {
  const weights = [1, 2, 3, 4];
  const snapshot = pool(weights.map((weight, i) => ({ id: `servoy-${i}`, weight })));
  const ctx = context({ balanceFactor: 100 }); // activeSessions all 0: pure weighted rendezvous
  const counts = new Map<string, number>();
  const keys = 100_000;
  for (let i = 0; i < keys; i++) {
    const got = route({ clientAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, affinityCookie: undefined, sessionId: undefined }, snapshot, ctx);
    if (got.kind !== 'backend') throw new Error('expected a backend');
    counts.set(got.backend.id, (counts.get(got.backend.id) ?? 0) + 1);
  }
  const total = weights.reduce((a, b) => a + b, 0);
  weights.forEach((weight, i) => {
    const share = (counts.get(`servoy-${i}`) ?? 0) / keys;
    const want = weight / total;
    t.ok(Math.abs(share - want) / want < 0.05, `weight ${weight}: share ${share.toFixed(4)} vs ${want.toFixed(4)}`);
  });
});

t.test('sticky path performs no placement work', async (t) => {
  const snapshot = pool(ids(100));
  let loadReads = 0;
  const ctx = { ...context(), activeSessions: () => (loadReads++, 0) };
  const cookie = codec.sign(CLIENT, 'servoy-42');
  const got = route({ clientAddress: '192.0.2.1', affinityCookie: cookie, sessionId: 'x.servoy-7' }, snapshot, ctx);
  t.equal(got.kind === 'backend' && got.backend.id, 'servoy-42');
  t.equal(loadReads, 0, 'no load lookups for a sticky request');
});
