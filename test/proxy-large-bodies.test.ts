/**
 * Bodies are streamed, never buffered whole (SPEC "Proxying"): a 64 MiB upload (with and
 * without Content-Length) and a 256 MiB download pass through one balancer process
 * intact, while that process's peak resident memory (VmHWM) stays far below the bytes
 * moved. Nothing is buffered on the test side either: the upload is generated and hashed
 * as it goes, the download checked chunk by chunk against the simulator's byte pattern.
 */
import t from 'tap';
import { request } from 'undici';
import { checkPattern } from '../examples/servoy-sim.js';
import { lbConfig, startBalancer } from './helpers/lb.js';
import { startSims } from './helpers/processes.js';
import { generatedBody, MiB, procStatus } from './fixtures/fault-backends.js';

const UPLOAD = 64 * MiB;
const DOWNLOAD = 256 * MiB;
/**
 * The balancer's peak resident memory may grow by at most this much over its start. Not an
 * absolute bound: the start differs by machine and by tap's coverage hook (80-120 MiB). The
 * growth itself is mostly garbage: V8 collects 64 KiB socket-read Buffers only once some
 * 64 MiB of them are outstanding (its external-memory GC trigger), so ~70-90 MiB is normal.
 * Buffering a body whole would add at least the 256 MiB download.
 */
const GROWTH_LIMIT = 128 * MiB;

t.test('64 MiB uploads and a 256 MiB download stream through with bounded memory', { timeout: 110_000 }, async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  // Under tap the child also carries tap's processinfo hook (re-injected into NODE_OPTIONS
  // of every spawn), some 30 MiB of the ~110 MiB it starts with; standalone it starts at ~80.
  const lb = await startBalancer(t, await lbConfig([sim!], { log: { access: false } }));
  const pid = lb.proc.pid!;
  const startRss = await procStatus(pid, 'VmRSS');
  let peakRss = startRss;
  t.comment(`balancer RSS at start: ${(startRss / MiB).toFixed(1)} MiB`);
  const poll = setInterval(() => {
    procStatus(pid, 'VmRSS').then((rss) => { peakRss = Math.max(peakRss, rss); }, () => undefined);
  }, 50);
  t.teardown(() => clearInterval(poll));

  for (const withLength of [true, false]) {
    const body = generatedBody(UPLOAD);
    const started = Date.now();
    const res = await request(`${lb.url}/upload`, {
      method: 'POST',
      body: body.stream,
      headers: { 'content-type': 'application/octet-stream', ...(withLength ? { 'content-length': String(UPLOAD) } : {}) },
    });
    const answer = (await res.body.json()) as { bytes: number; sha256: string; server: string };
    t.equal(res.statusCode, 200, `upload ${withLength ? 'with Content-Length' : 'chunked'}`);
    t.equal(answer.bytes, UPLOAD, 'every byte arrived');
    t.equal(answer.sha256, body.digest(), 'and intact');
    t.comment(`64 MiB upload (${withLength ? 'content-length' : 'chunked'}) in ${Date.now() - started} ms`);
  }

  const started = Date.now();
  const res = await request(`${lb.url}/download?bytes=${DOWNLOAD}`);
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-length'], String(DOWNLOAD), 'Content-Length relayed');
  let offset = 0;
  let firstBad = -1;
  for await (const chunk of res.body) {
    const buf = chunk as Buffer;
    if (firstBad === -1) {
      const bad = checkPattern(buf, offset);
      if (bad !== -1) firstBad = offset + bad;
    }
    offset += buf.length;
  }
  t.equal(offset, DOWNLOAD, 'every byte of the download arrived');
  t.equal(firstBad, -1, 'and in order, intact');
  t.comment(`256 MiB download in ${Date.now() - started} ms`);

  clearInterval(poll);
  const hwm = await procStatus(pid, 'VmHWM');
  peakRss = Math.max(peakRss, await procStatus(pid, 'VmRSS'));
  t.comment(`balancer peak RSS: VmHWM ${(hwm / MiB).toFixed(1)} MiB, polled ${(peakRss / MiB).toFixed(1)} MiB`);
  const growth = Math.max(hwm, peakRss) - startRss;
  t.ok(growth < GROWTH_LIMIT, `peak RSS grew ${(growth / MiB).toFixed(1)} MiB (< ${GROWTH_LIMIT / MiB} MiB) while ${(UPLOAD * 2 + DOWNLOAD) / MiB} MiB passed`);
  t.equal(await lb.stop(), 0, 'clean exit');
});
