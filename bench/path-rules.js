// Path-rule micro-benchmark: the per-request cost of judging a request target against the
// `paths` rules a Servoy pool typically has (REST API stateless, /servoy-admin/ allowed to a
// network, /servoy-developer/ denied): a plain path (the allocation-free fast path), a path
// with `;jsessionid=` and a query, and a path with escapes that takes the full normaliser.
// Without `paths` in the config none of this runs.
//   npm run build && node bench/path-rules.js
import { judgePath, PathRules } from '../dist/src/routing/path-rules.js';
import { writeResult } from './lib.js';

const rules = PathRules.compile([
  { prefix: '/servoy-service/rest_ws/', affinity: 'none' },
  { prefix: '/servoy-admin/', allow: ['10.0.0.0/8'] },
  { prefix: '/servoy-developer/', deny: true },
]);

function timePerCall(fn, iterations) {
  for (let i = 0; i < 50_000; i++) fn(i); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / iterations;
}

const targets = {
  plain: '/solutions/crm/index.html',
  websocket: '/websocket/1/main/1?sessionKey=abc',
  jsessionid: '/servoy-service/rest_ws/crm/orders;jsessionid=ABC123.servoy-a?limit=10',
  escaped: '/servoy-admin/%2e%2e/solutions/%E2%82%AC/x',
};
const rows = [];
for (const [name, target] of Object.entries(targets)) {
  const ns = timePerCall(() => judgePath(rules, target, '10.1.2.3'), 1_000_000);
  rows.push({ target: name, ns: Math.round(ns), verdict: judgePath(rules, target, '10.1.2.3').kind });
}
console.table(rows);
writeResult('path-rules', { rows });
