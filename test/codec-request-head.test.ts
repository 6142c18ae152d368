/**
 * The request-head codec (src/proxy/codec/request-head.ts) as a table: each accepted
 * shape with what it parses to, each refused shape with its code and reason. Every row
 * is also fed byte by byte (the answer for each prefix is `incomplete` or the final
 * answer, and the whole gives the same answer): a head split across reads anywhere
 * parses the same.
 */
import t, { type Test } from 'tap';
import { parseRequestHead, type ParseResult } from '../src/proxy/codec/request-head.js';

const H = 'Host: lb.test\r\n';
const MAX = 8192;

/** [name, request, expected code or 'head'] */
const REFUSED: [string, string, 'bad-request' | 'too-large' | 'not-implemented', string][] = [
  ['bare LF in a header line', `GET / HTTP/1.1\r\n${H}X: a\n\r\n`, 'bad-request', 'bare LF'],
  ['bare LF as the head end', `GET / HTTP/1.1\r\n${H}\n`, 'bad-request', 'bare LF'],
  ['bare LF after the request line', `GET / HTTP/1.1\n${H}\r\n`, 'bad-request', 'malformed request line'],
  ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 'bad-request', 'bare CR'],
  ['bare CR at the head end', `GET / HTTP/1.1\r\n${H}\rX`, 'bad-request', 'bare CR'],
  ['obs-fold (SP)', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, 'bad-request', 'obs-fold'],
  ['obs-fold (HTAB)', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, 'bad-request', 'obs-fold'],
  ['space before the colon', `GET / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n`, 'bad-request', 'malformed header name'],
  ['empty header name', `GET / HTTP/1.1\r\n${H}: a\r\n\r\n`, 'bad-request', 'empty header name'],
  ['NUL in a header name', `GET / HTTP/1.1\r\n${H}X\0: a\r\n\r\n`, 'bad-request', 'malformed header name'],
  ['NUL in a header value', `GET / HTTP/1.1\r\n${H}X: a\0\r\n\r\n`, 'bad-request', 'control character in header value'],
  ['DEL in a header value', `GET / HTTP/1.1\r\n${H}X: a\x7f\r\n\r\n`, 'bad-request', 'control character in header value'],
  ['VT in a header value', `GET / HTTP/1.1\r\n${H}X:\x0bchunked\r\n\r\n`, 'bad-request', 'control character in header value'],
  ['non-token method', `GE(T / HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed method'],
  ['empty method', ` / HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed method'],
  ['unknown method', `BREW / HTTP/1.1\r\n${H}\r\n`, 'not-implemented', 'unknown method'],
  ['lower-case method', `get / HTTP/1.1\r\n${H}\r\n`, 'not-implemented', 'unknown method'],
  ['CONNECT', `CONNECT lb.test:443 HTTP/1.1\r\n${H}\r\n`, 'not-implemented', 'unknown method'],
  ['absolute-form', `GET http://lb.test/ HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'target not in origin-form'],
  ['* without OPTIONS', `GET * HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'target not in origin-form'],
  ['*x with OPTIONS', `OPTIONS *x HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed target'],
  ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'target not in origin-form'],
  ['space in the target', `GET /a b HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed version'],
  ['HTAB in the target', `GET /a\tb HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed target'],
  ['fragment in the target', `GET /a#b HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed target'],
  ['0xFF in the target', `GET /a\xffb HTTP/1.1\r\n${H}\r\n`, 'bad-request', 'malformed target'],
  ['no version', `GET /a\r\n${H}\r\n`, 'bad-request', 'malformed target'],
  ['HTTP/0.9', `GET / HTTP/0.9\r\n${H}\r\n`, 'bad-request', 'malformed version'],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 'bad-request', 'unsupported version'],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 'bad-request', 'malformed version'],
  ['lower-case version', `GET / http/1.1\r\n${H}\r\n`, 'bad-request', 'malformed version'],
  ['space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, 'bad-request', 'malformed request line'],
  ['CL with TE (CL.TE)', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, 'bad-request', 'Content-Length with Transfer-Encoding'],
  ['TE with CL (TE.CL)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`, 'bad-request', 'Content-Length with Transfer-Encoding'],
  ['two equal Content-Lengths', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`, 'bad-request', 'more than one Content-Length'],
  ['Content-Length list', `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['Content-Length +5', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['Content-Length -1', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['Content-Length 5 5', `POST / HTTP/1.1\r\n${H}Content-Length: 5 5\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['Content-Length 0x5', `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['empty Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['16-digit Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: 0000000000000005\r\n\r\n`, 'bad-request', 'malformed Content-Length'],
  ['TE: gzip, chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, 'not-implemented', 'Transfer-Encoding other than chunked'],
  ['TE: xchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`, 'not-implemented', 'Transfer-Encoding other than chunked'],
  ['TE: identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, 'not-implemented', 'Transfer-Encoding other than chunked'],
  ['TE with HTAB', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\n\r\n`, 'bad-request', 'HTAB in Transfer-Encoding'],
  ['TE with trailing SP then HTAB', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked \t\r\n\r\n`, 'bad-request', 'HTAB in Transfer-Encoding'],
  ['TE twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, 'bad-request', 'more than one Transfer-Encoding'],
  ['TE in HTTP/1.0', `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n`, 'bad-request', 'Transfer-Encoding in HTTP/1.0'],
  ['two Hosts', `GET / HTTP/1.1\r\n${H}host: other\r\n\r\n`, 'bad-request', 'more than one Host'],
  ['no Host in HTTP/1.1', `GET / HTTP/1.1\r\n\r\n`, 'bad-request', 'missing Host'],
  ['empty Upgrade', `GET / HTTP/1.1\r\n${H}Connection: upgrade\r\nUpgrade:\r\n\r\n`, 'bad-request', 'empty Upgrade'],
  ['two Upgrades', `GET / HTTP/1.1\r\n${H}Upgrade: a\r\nUpgrade: b\r\n\r\n`, 'bad-request', 'more than one Upgrade'],
  ['Upgrade with a body', `GET / HTTP/1.1\r\n${H}Connection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx`, 'bad-request', 'Upgrade with a body'],
  ['101 header lines', `GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(100)}\r\n`, 'too-large', 'too many header lines'],
  ['head over the limit', `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(MAX)}\r\n\r\n`, 'too-large', 'head too large'],
  ['request line over the limit', `GET /${'a'.repeat(MAX)} HTTP/1.1\r\n${H}\r\n`, 'too-large', 'request line too long'],
];

const COOKIE = 'Cookie: JSESSIONID=8F2C1A9B; servoy.lb=b2\r\n';
const ACCEPTED: [string, string, Partial<Extract<ParseResult, { kind: 'head' }>>][] = [
  ['plain GET', `GET /a?b=c HTTP/1.1\r\n${H}\r\n`, { method: 'GET', target: '/a?b=c', versionMinor: 1, headers: ['Host', 'lb.test'], body: { kind: 'none' }, keepAlive: true }],
  ['Servoy GET with cookies', `GET /servoy-ngclient/ HTTP/1.1\r\n${H}${COOKIE}\r\n`, { headers: ['Host', 'lb.test', 'Cookie', 'JSESSIONID=8F2C1A9B; servoy.lb=b2'] }],
  ['value whitespace trimmed, inner kept, obs-text kept', `GET / HTTP/1.1\r\n${H}X: \t a \t b \t\r\nY: caf\xe9\r\nZ:\r\n\r\n`, { headers: ['Host', 'lb.test', 'X', 'a \t b', 'Y', 'caf\xe9', 'Z', ''] }],
  ['Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, { body: { kind: 'length', length: 5 }, headEnd: 53 }],
  ['Content-Length with leading zeros', `POST / HTTP/1.1\r\n${H}Content-Length: 005\r\n\r\nhello`, { body: { kind: 'length', length: 5 } }],
  ['Content-Length 0', `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, { body: { kind: 'none' } }],
  ['15-digit Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: 999999999999999\r\n\r\n`, { body: { kind: 'length', length: 999999999999999 } }],
  ['chunked, any case', `POST / HTTP/1.1\r\n${H}transfer-encoding: ChUnKeD\r\n\r\n`, { body: { kind: 'chunked' } }],
  ['chunked with trailing spaces (optional whitespace, as Node)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked  \r\n\r\n`, { body: { kind: 'chunked' } }],
  ['HTTP/1.0 without Host, closes', `GET / HTTP/1.0\r\n\r\n`, { versionMinor: 0, keepAlive: false }],
  ['HTTP/1.0 keep-alive', `GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n`, { keepAlive: true }],
  ['HTTP/1.0 close wins over keep-alive', `GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n`, { keepAlive: false }],
  ['HTTP/1.1 close', `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { keepAlive: false }],
  ['WebSocket upgrade', `GET /ws HTTP/1.1\r\n${H}Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n`, { upgrade: 'websocket' }],
  ['Upgrade without Connection: upgrade is no upgrade', `GET /ws HTTP/1.1\r\n${H}Upgrade: websocket\r\n\r\n`, { upgrade: undefined }],
  ['Expect: 100-continue', `PUT / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx`, { expect: 'continue' }],
  ['Expect: something else', `PUT / HTTP/1.1\r\n${H}Expect: 100-continue\r\nExpect: x\r\nContent-Length: 1\r\n\r\nx`, { expect: 'other' }],
  ['Expect: something else, then 100-continue', `PUT / HTTP/1.1\r\n${H}Expect: x\r\nExpect: 100-continue\r\n\r\n`, { expect: 'other' }],
  ['OPTIONS *', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, { method: 'OPTIONS', target: '*' }],
  ['100 header lines', `GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(99)}\r\n`, { kind: 'head' }],
  ['head exactly at the limit', `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(MAX - 38)}\r\n\r\n`, { headEnd: MAX }],
];

/** The parse of the whole, checked against byte-by-byte feeding. */
function parseBoth(t: Test, s: string): ParseResult {
  const b = Buffer.from(s, 'latin1');
  const whole = parseRequestHead(b, 0, MAX);
  let first: ParseResult | undefined;
  for (let n = 1; n <= b.length && first === undefined; n++) {
    const r = parseRequestHead(b.subarray(0, n), 0, MAX);
    if (r.kind !== 'incomplete') first = r;
  }
  t.same(first, whole, 'byte by byte gives the same answer as the whole');
  // A prefix of other bytes before `start` changes nothing but offsets.
  const shifted = parseRequestHead(Buffer.concat([Buffer.from('xyz'), b]), 3, MAX);
  if (whole.kind === 'head' && shifted.kind === 'head') t.equal(shifted.headEnd, whole.headEnd + 3, 'start offset honoured');
  else t.same(shifted, whole, 'start offset honoured');
  return whole;
}

t.test('refused heads', async (t) => {
  for (const [name, req, code, reason] of REFUSED) {
    await t.test(name, async (t) => {
      t.same(parseBoth(t, req), { kind: 'error', code, reason });
    });
  }
});

t.test('accepted heads', async (t) => {
  for (const [name, req, want] of ACCEPTED) {
    await t.test(name, async (t) => {
      const r = parseBoth(t, req);
      t.equal(r.kind, 'head');
      t.match(r, want);
      for (const [k, v] of Object.entries(want)) if (v === undefined) t.notOk(k in r, `no ${k}`);
    });
  }
});

t.test('pipelined: the second head parses from the first one\'s end', async (t) => {
  const b = Buffer.from(`POST /1 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\n${H}\r\n`, 'latin1');
  const first = parseRequestHead(b, 0, MAX);
  if (first.kind !== 'head' || first.body.kind !== 'length') throw new Error('first head');
  const second = parseRequestHead(b, first.headEnd + first.body.length, MAX);
  t.match(second, { kind: 'head', target: '/2', headEnd: b.length });
});

t.test('an incomplete head is incomplete, not an error', async (t) => {
  t.same(parseRequestHead(Buffer.from(`GET / HTTP/1.1\r\n${H}X: a`), 0, MAX), { kind: 'incomplete' });
  t.same(parseRequestHead(Buffer.alloc(0), 0, MAX), { kind: 'incomplete' });
});
