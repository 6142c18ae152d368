/**
 * More than one Host header (SPEC "Proxying": 400). Node keeps only the first in
 * req.headers; before the balancer looked at rawHeaders, the partition key came from the
 * first Host, the backend got both and X-Forwarded-Host the last, so each party could be
 * told a different site. Now the balancer's 400 page answers, before routing (no session,
 * no partition assignment), for plain requests and WebSocket handshakes, in session and
 * partition mode.
 */
import t from 'tap';
import { request } from 'undici';
import { adminUrlOf, lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { countingBackend, probe } from './fixtures/hostile-net.js';

const WS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

/** Requests with two Host lines, each with a path of its own. */
const TWO_HOSTS: Record<string, string> = {
  'two different Hosts': 'GET /two/different HTTP/1.1\r\nHost: tenant-a.test\r\nHost: tenant-b.test\r\n\r\n',
  'the same Host twice': 'GET /two/same HTTP/1.1\r\nHost: tenant-a.test\r\nHost: tenant-a.test\r\n\r\n',
  'Host and host': 'GET /two/case HTTP/1.1\r\nHost: tenant-a.test\r\nhost: tenant-b.test\r\n\r\n',
  'two Hosts on HTTP/1.0': 'GET /two/http10 HTTP/1.0\r\nHost: tenant-a.test\r\nHost: tenant-b.test\r\n\r\n',
  'two Hosts with a body': 'POST /two/body HTTP/1.1\r\nHost: tenant-a.test\r\nContent-Length: 5\r\nHost: tenant-b.test\r\n\r\nhello',
  'a WebSocket handshake with two Hosts': `GET /two/websocket HTTP/1.1\r\nHost: tenant-a.test\r\nHost: tenant-b.test\r\n${WS}\r\n`,
};

const MODES = {
  session: {},
  partition: { affinity: { mode: 'partition', partitionKey: { from: 'host', pattern: '^([^.:]+)' } } },
};

for (const [mode, extra] of Object.entries(MODES)) {
  t.test(`${mode} mode: more than one Host header gets 400 and reaches no backend`, async (t) => {
    const backend = await countingBackend(t);
    const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 }, ...extra }));
    const adminUrl = await adminUrlOf(lb);
    for (const [name, bytes] of Object.entries(TWO_HOSTS)) {
      const res = await probe(lb.url, bytes, { timeoutMs: 10_000 });
      t.equal(res.status, 400, `${name}: 400`);
      t.match(res.raw, /<h1>400 /, `${name}: the balancer's 400 page`);
      t.notMatch(res.raw, /set-cookie/i, `${name}: no session was started`);
      t.ok(res.closed, `${name}: the connection is closed`);
    }
    // Positive signal first: a request with one Host reaches the backend; only then count.
    const ok = await probe(lb.url, 'GET /one HTTP/1.1\r\nHost: tenant-c.test\r\nConnection: close\r\n\r\n');
    t.equal(ok.status, 200, 'one Host: served');
    await waitFor(() => backend.seen.some((r) => r.url === '/one'), 5000, 'the request with one Host at the backend');
    t.same(backend.seen.map((r) => r.url), ['/one'], 'no request with two Hosts reached the backend');
    if (mode === 'partition') {
      const res = await request(`${adminUrl}/api/partitions`);
      const { partitions } = (await res.body.json()) as { partitions: { key: string }[] };
      t.same(partitions.map((p) => p.key), ['tenant-c'], 'no partition was assigned for a request with two Hosts');
    }
  });
}
