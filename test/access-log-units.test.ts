/**
 * The access-log line builders and X-Request-Id, without sockets: Apache's escaping of
 * every kind of byte, the %t time with its offset, `-` for empty values, JSON lines that
 * parse back to the entry, and which request ids pass from a trusted proxy.
 */
import t from 'tap';
import { apacheEscape, clfTime, combinedLine, jsonLine, type AccessEntry } from '../src/proxy/access-log.js';
import { acceptableRequestId, nextRequestId } from '../src/proxy/request-id.js';
import { requestIdOf, upstreamHeaders } from '../src/proxy/request-headers.js';

const entry: AccessEntry = {
  client: '10.0.0.9',
  method: 'POST',
  host: 'h.example',
  path: '/a b"c',
  httpVersion: '1.0',
  status: 502,
  backend: undefined,
  route: 'new-session',
  ms: 1.5,
  bytesIn: 10,
  bytesOut: 0,
  userAgent: 'ua "q" \\ \t\u00e9\u20ac',
  referer: undefined,
  requestId: 'id-1',
  outcome: 'backend-error',
  websocket: false,
};

t.test('apacheEscape: as ap_escape_logitem', async (t) => {
  t.equal(apacheEscape('plain text/1.0 (x)'), 'plain text/1.0 (x)', 'nothing to escape: the same string');
  t.equal(apacheEscape('a"b\\c'), 'a\\"b\\\\c');
  t.equal(apacheEscape('\b\n\r\t\v\x01\x7f'), '\\b\\n\\r\\t\\v\\x01\\x7f');
  t.equal(apacheEscape('\u00e9'), '\\xe9', 'a latin1 byte');
  t.equal(apacheEscape('\u20ac'), '\\xe2\\x82\\xac', 'beyond latin1: its UTF-8 bytes');
});

t.test('combinedLine: Apache combined, - for empty values', async (t) => {
  const line = combinedLine(entry, Date.UTC(2026, 0, 2, 3, 4, 5));
  t.match(line, /^10\.0\.0\.9 - - \[\d{2}\/\w{3}\/2026:\d{2}:\d{2}:05 [+-]\d{4}\] "POST \/a b\\"c HTTP\/1\.0" 502 - "-" "ua \\"q\\" \\\\ \\t\\xe9\\xe2\\x82\\xac"\n$/);
  t.equal(combinedLine({ ...entry, client: '' }, 0).split(' ')[0], '-', 'no client address: -');
});

t.test('clfTime: local time with its offset, cached per second', async (t) => {
  const ms = Date.UTC(2026, 11, 8, 9, 30, 5, 500);
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const hhmm = `${String(Math.floor(Math.abs(off) / 60)).padStart(2, '0')}${String(Math.abs(off) % 60).padStart(2, '0')}`;
  t.match(clfTime(ms), new RegExp(`^\\d{2}/Dec/2026:\\d{2}:30:05 \\${sign}${hhmm}$`));
  t.equal(clfTime(ms + 400), clfTime(ms), 'same second, same text');
  t.not(clfTime(ms + 1000), clfTime(ms));
});

t.test('jsonLine: parses back, absent values left out', async (t) => {
  const line = jsonLine(entry, 1234, ',"worker":2,"log":"access"');
  t.ok(line.endsWith('}\n'));
  t.same(JSON.parse(line), {
    level: 30, time: 1234, worker: 2, log: 'access', client: '10.0.0.9', method: 'POST', host: 'h.example', path: '/a b"c', status: 502,
    route: 'new-session', ms: 1.5, bytesIn: 10, bytes: 0, ua: entry.userAgent, requestId: 'id-1', outcome: 'backend-error',
  });
  t.equal((JSON.parse(jsonLine({ ...entry, websocket: true, outcome: undefined }, 1)) as { websocket: boolean }).websocket, true);
});

t.test('X-Request-Id: token characters, bounded; generated ones unique; always the last header', async (t) => {
  t.ok(acceptableRequestId('abc-123_.~+!#$%&\'*^`|'));
  for (const bad of ['', 'a b', 'a"b', 'a,b', 'é', 'x'.repeat(129), 'a\\b']) t.notOk(acceptableRequestId(bad), JSON.stringify(bad));
  t.ok(acceptableRequestId('x'.repeat(128)));
  const ids = new Set(Array.from({ length: 1000 }, () => nextRequestId()));
  t.equal(ids.size, 1000);
  const raw = ['Host', 'h', 'X-Request-Id', 'from-edge', 'X-Request-Id', 'second'];
  const trusted = upstreamHeaders(raw, { peerAddress: '10.0.0.1', trusted: true, proto: 'http' });
  t.equal(requestIdOf(trusted), 'from-edge', 'the first, from a trusted proxy');
  t.equal(trusted.filter((h) => h.toLowerCase() === 'x-request-id').length, 1, 'sent once');
  const untrusted = upstreamHeaders(raw, { peerAddress: '10.0.0.1', trusted: false, proto: 'http' });
  t.not(requestIdOf(untrusted), 'from-edge');
  t.equal(untrusted.filter((h) => h.toLowerCase() === 'x-request-id').length, 1);
  const listed = upstreamHeaders(['Connection', 'x-request-id', 'X-Request-Id', 'from-edge'], { peerAddress: '10.0.0.1', trusted: true, proto: 'http' });
  t.equal(listed.at(-2), 'x-request-id', 'still last when Connection names it');
});
