// Routing micro-benchmarks: time per decision at 10 / 100 / 1,000 backends (a sticky
// request with a valid cookie, and a new session), and the share of keys that move when
// one backend is added or removed, against the ideal k/N.
//   npm run build && node bench/routing.js
import { buildSnapshot } from '../dist/src/pool/snapshot.js';
import { route } from '../dist/src/routing/router.js';
import { AffinityCookieCodec } from '../dist/src/routing/affinity-cookie.js';
import { writeResult } from './lib.js';

const codec = new AffinityCookieCodec(['bench-secret-0123456789']);
function snapshotOf(n, extra = []) {
  const inputs = Array.from({ length: n }, (_, i) => ({ config: { id: `servoy-${i}`, url: `http://127.0.0.1:${10000 + i}`, weight: 1 + (i % 3), route: `servoy-${i}` }, state: 'up' }));
  for (const id of extra) inputs.push({ config: { id, url: 'http://127.0.0.1:9', weight: 1, route: id }, state: 'up' });
  return buildSnapshot(inputs, 1);
}
function contextOf(loads) {
  return {
    verifyCookie: (raw) => codec.verify(raw),
    learnedBackend: () => undefined,
    activeSessions: (id) => loads.get(id) ?? 0,
    balanceFactor: 1.25,
  };
}
function timePerCall(fn, iterations) {
  for (let i = 0; i < Math.min(iterations, 20000); i++) fn(i); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / iterations;
}

const rows = [];
for (const n of [10, 100, 1000]) {
  const snapshot = snapshotOf(n);
  const loads = new Map(snapshot.backends.map((b) => [b.id, 50]));
  const ctx = contextOf(loads);
  const cookie = codec.sign('client-0000000001', 'servoy-3');
  const addresses = Array.from({ length: 4096 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`);
  const sticky = timePerCall(() => route({ clientAddress: '10.0.0.1', affinityCookie: cookie, sessionId: undefined }, snapshot, ctx), 200000);
  const fresh = timePerCall((i) => route({ clientAddress: addresses[i & 4095], affinityCookie: undefined, sessionId: undefined }, snapshot, ctx), n >= 1000 ? 20000 : 100000);
  rows.push({ backends: n, stickyNs: Math.round(sticky), newSessionNs: Math.round(fresh) });
}

const movement = [];
const keys = Array.from({ length: 100000 }, (_, i) => `192.168.${(i >> 8) & 255}.${i & 255}:${i}`);
for (const n of [3, 10, 50]) {
  const before = snapshotOf(n);
  const after = snapshotOf(n, ['servoy-new']);
  const ctx = contextOf(new Map());
  let moved = 0;
  for (const key of keys) {
    const a = route({ clientAddress: key, affinityCookie: undefined, sessionId: undefined }, before, ctx);
    const b = route({ clientAddress: key, affinityCookie: undefined, sessionId: undefined }, after, ctx);
    if (a.backend.id !== b.backend.id) moved++;
  }
  const totalWeight = after.backends.reduce((s, b) => s + b.weight, 0);
  const ideal = 1 / totalWeight; // the new backend has weight 1
  movement.push({ backends: n, movedShare: moved / keys.length, idealShare: ideal, ratio: Math.round((moved / keys.length / ideal) * 1000) / 1000 });
}

writeResult('routing', { decisions: rows, keyMovementOnAdd: movement });
console.log('| backends | sticky decision | new-session decision |\n| ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.backends} | ${r.stickyNs} ns | ${r.newSessionNs} ns |`);
console.log('\n| backends | keys moved on add | ideal | ratio |\n| ---: | ---: | ---: | ---: |');
for (const m of movement) console.log(`| ${m.backends} | ${(m.movedShare * 100).toFixed(2)}% | ${(m.idealShare * 100).toFixed(2)}% | ${m.ratio} |`);
