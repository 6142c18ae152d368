/**
 * The response-head codec (src/proxy/codec/response-head.ts) as a table: each refused
 * shape with its code and reason, each accepted shape with its framing (RFC 9112 §6.3)
 * and what it parses to. Every row is also fed byte by byte (each prefix is `incomplete`
 * or the final answer) and at an offset: a head split across reads anywhere parses the same.
 */
import t, { type Test } from 'tap';
import { parseResponseHead, type ResponseParseResult } from '../src/proxy/codec/response-head.js';
import { connectionFlags, decimalLength, internedName, namesByLength } from '../src/proxy/codec/fields.js';

const MAX = 8192;

const REFUSED: [string, string, 'bad-response' | 'too-large', string][] = [
  ['HTTP/0.9', 'HTTP/0.9 200 OK\r\n\r\n', 'bad-response', 'malformed version'],
  ['HTTP/2', 'HTTP/2 200 OK\r\n\r\n', 'bad-response', 'malformed version'],
  ['lower-case version', 'http/1.1 200 OK\r\n\r\n', 'bad-response', 'malformed version'],
  ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n', 'bad-response', 'unsupported version'],
  ['no SP after the version', 'HTTP/1.1\t200 OK\r\n\r\n', 'bad-response', 'malformed status line'],
  ['two SP before the status', 'HTTP/1.1  200 OK\r\n\r\n', 'bad-response', 'malformed status code'],
  ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', 'bad-response', 'malformed status code'],
  ['four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', 'bad-response', 'malformed status code'],
  ['status 099', 'HTTP/1.1 099 x\r\n\r\n', 'bad-response', 'status code out of range'],
  ['status 600', 'HTTP/1.1 600 x\r\n\r\n', 'bad-response', 'status code out of range'],
  ['control character in the reason', 'HTTP/1.1 200 O\x01K\r\n\r\n', 'bad-response', 'control character in reason phrase'],
  ['bare LF after the status line', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'bad-response', 'bare LF'],
  ['bare CR after the status line', 'HTTP/1.1 200 OK\rX', 'bad-response', 'bare CR'],
  ['bare LF in a header line', 'HTTP/1.1 200 OK\r\nX: a\n\r\n', 'bad-response', 'bare LF'],
  ['bare LF as the head end', 'HTTP/1.1 200 OK\r\nX: a\r\n\n', 'bad-response', 'bare LF'],
  ['bare CR in a value', 'HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n', 'bad-response', 'bare CR'],
  ['bare CR at the head end', 'HTTP/1.1 200 OK\r\n\rX', 'bad-response', 'bare CR'],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'bad-response', 'obs-fold'],
  ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx', 'bad-response', 'malformed header name'],
  ['empty header name', 'HTTP/1.1 200 OK\r\n: a\r\n\r\n', 'bad-response', 'empty header name'],
  ['NUL in a value', 'HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n', 'bad-response', 'control character in header value'],
  ['two Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', 'bad-response', 'more than one Content-Length'],
  ['Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx', 'bad-response', 'malformed Content-Length'],
  ['Content-Length +1', 'HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx', 'bad-response', 'malformed Content-Length'],
  ['Content-Length hex', 'HTTP/1.1 200 OK\r\nContent-Length: 0x1\r\n\r\nx', 'bad-response', 'malformed Content-Length'],
  ['16-digit Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 0000000000000001\r\n\r\nx', 'bad-response', 'malformed Content-Length'],
  ['CL with TE', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'Content-Length with Transfer-Encoding'],
  ['TE twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'more than one Transfer-Encoding'],
  ['TE gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'bad-response', 'Transfer-Encoding other than chunked'],
  ['TE chunked, gzip', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'bad-response', 'Transfer-Encoding other than chunked'],
  ['TE identity', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n', 'bad-response', 'Transfer-Encoding other than chunked'],
  ['TE with HTAB', 'HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked\r\n\r\n', 'bad-response', 'HTAB in Transfer-Encoding'],
  ['TE with trailing SP', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \r\n\r\n', 'bad-response', 'whitespace after Transfer-Encoding'],
  ['TE in HTTP/1.0', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'Transfer-Encoding in HTTP/1.0'],
  ['Content-Length on a 100', 'HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n', 'bad-response', 'framing header on a 1xx'],
  ['TE on a 101', 'HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'framing header on a 1xx'],
  ['Content-Length 5 on a 204', 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'bad-response', 'framing header on a 204'],
  ['TE on a 204', 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'framing header on a 204'],
  ['TE on a 304', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad-response', 'Transfer-Encoding on a 304'],
  ['100 Continue with Connection: close', 'HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n', 'bad-response', 'interim response closes the connection'],
  ['100 Continue in HTTP/1.0', 'HTTP/1.0 100 Continue\r\n\r\n', 'bad-response', 'interim response closes the connection'],
  ['101 header lines', `HTTP/1.1 200 OK\r\n${'X: y\r\n'.repeat(101)}\r\n`, 'too-large', 'too many header lines'],
  ['head over the limit', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX)}\r\n\r\n`, 'too-large', 'head too large'],
  ['status line over the limit', `HTTP/1.1 200 ${'a'.repeat(MAX)}\r\n\r\n`, 'too-large', 'status line too long'],
];

type Head = Extract<ResponseParseResult, { kind: 'head' }>;
/** [name, response, to a HEAD request, expected fields] */
const ACCEPTED: [string, string, boolean, Partial<Head>][] = [
  ['200 with Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', false, { status: 200, reason: 'OK', versionMinor: 1, headers: ['Content-Length', '5'], body: { kind: 'length', length: 5 }, keepAlive: true, interim: false, upgrade: false, headEnd: 38 }],
  ['Content-Length 0', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', false, { body: { kind: 'none' }, keepAlive: true }],
  ['leading zeros', 'HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n', false, { body: { kind: 'length', length: 7 } }],
  ['chunked, any case', 'HTTP/1.1 200 OK\r\ntransfer-encoding: ChUnKeD\r\n\r\n', false, { body: { kind: 'chunked' }, keepAlive: true }],
  ['no framing: close-delimited', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n', false, { body: { kind: 'close' }, keepAlive: false }],
  ['HEAD: Content-Length names no body', 'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n', true, { body: { kind: 'none' }, keepAlive: true }],
  ['HEAD: chunked names no body', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', true, { body: { kind: 'none' } }],
  ['HEAD without framing headers: not reused (as Node\'s client)', 'HTTP/1.1 200 OK\r\nX: y\r\n\r\n', true, { body: { kind: 'none' }, keepAlive: false }],
  ['HEAD answered 204: reused', 'HTTP/1.1 204 No Content\r\n\r\n', true, { body: { kind: 'none' }, keepAlive: true }],
  ['100 Continue is interim', 'HTTP/1.1 100 Continue\r\n\r\n', false, { status: 100, reason: 'Continue', interim: true, body: { kind: 'none' }, keepAlive: true }],
  ['103 Early Hints is interim', 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n', false, { status: 103, interim: true }],
  ['101 is the upgrade answer', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', false, { status: 101, upgrade: true, interim: false, keepAlive: false, body: { kind: 'none' } }],
  ['204 without framing', 'HTTP/1.1 204 No Content\r\n\r\n', false, { body: { kind: 'none' }, keepAlive: true }],
  ['204 with Content-Length 0', 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n', false, { body: { kind: 'none' } }],
  ['304 with the representation\'s Content-Length', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n', false, { body: { kind: 'none' }, keepAlive: true }],
  ['Connection: close', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx', false, { keepAlive: false, body: { kind: 'length', length: 1 } }],
  ['Connection: keep-alive, close', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive, close\r\n\r\nx', false, { keepAlive: false }],
  ['HTTP/1.0 closes', 'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx', false, { versionMinor: 0, keepAlive: false }],
  ['HTTP/1.0 keep-alive', 'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx', false, { keepAlive: true }],
  ['HTTP/1.0 close-delimited', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nx', false, { keepAlive: false, body: { kind: 'close' } }],
  ['no reason, no SP', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', false, { reason: '' }],
  ['empty reason', 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', false, { reason: '' }],
  ['reason with SP, HTAB and obs-text', 'HTTP/1.1 404 Niet \tgevonden \xe9\r\nContent-Length: 0\r\n\r\n', false, { status: 404, reason: 'Niet \tgevonden \xe9' }],
  ['values trimmed, names as sent', 'HTTP/1.1 200 OK\r\nset-cookie:  a=b \t\r\nX-Odd: \t\r\nContent-Length: 0\r\n\r\n', false, { headers: ['set-cookie', 'a=b', 'X-Odd', '', 'Content-Length', '0'] }],
  ['Keep-Alive timeout', 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n', false, { keepAliveTimeout: 5, keepAlive: true }],
  ['Keep-Alive timeout after max, any case', 'HTTP/1.1 200 OK\r\nkeep-alive: max=9,TimeOut=30\r\nContent-Length: 0\r\n\r\n', false, { keepAliveTimeout: 30 }],
  ['Keep-Alive without a timeout', 'HTTP/1.1 200 OK\r\nKeep-Alive: max=100, xtimeout=3\r\nContent-Length: 0\r\n\r\n', false, { keepAliveTimeout: undefined }],
  ['Keep-Alive timeout without digits', 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=x\r\nContent-Length: 0\r\n\r\n', false, { keepAliveTimeout: undefined }],
  ['100 header lines', `HTTP/1.1 200 OK\r\n${'X: y\r\n'.repeat(99)}Content-Length: 0\r\n\r\n`, false, { status: 200 }],
  ['head exactly at the limit', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX - 24)}\r\n\r\n`, false, { headEnd: MAX }],
];

function parseBoth(t: Test, s: string, toHead: boolean): ResponseParseResult {
  const b = Buffer.from(s, 'latin1');
  const whole = parseResponseHead(b, 0, MAX, toHead);
  let first: ResponseParseResult | undefined;
  for (let n = 1; n <= b.length && first === undefined; n++) {
    const r = parseResponseHead(b.subarray(0, n), 0, MAX, toHead);
    if (r.kind !== 'incomplete') first = r;
  }
  t.same(first, whole, 'byte by byte gives the same answer as the whole');
  const shifted = parseResponseHead(Buffer.concat([Buffer.from('xyz'), b]), 3, MAX, toHead);
  if (whole.kind === 'head' && shifted.kind === 'head') t.equal(shifted.headEnd, whole.headEnd + 3, 'start offset honoured');
  else t.same(shifted, whole, 'start offset honoured');
  return whole;
}

t.test('refused response heads', async (t) => {
  for (const [name, res, code, reason] of REFUSED) {
    await t.test(name, async (t) => {
      t.same(parseBoth(t, res, false), { kind: 'error', code, reason });
    });
  }
});

t.test('accepted response heads and their framing', async (t) => {
  for (const [name, res, toHead, want] of ACCEPTED) {
    await t.test(name, async (t) => {
      const r = parseBoth(t, res, toHead);
      t.equal(r.kind, 'head');
      t.match(r, want);
      for (const [k, v] of Object.entries(want)) if (v === undefined) t.notOk(k in r, `no ${k}`);
    });
  }
});

t.test('100 Continue then the final head, from the interim head\'s end', async (t) => {
  const b = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok', 'latin1');
  const first = parseResponseHead(b, 0, MAX, false);
  if (first.kind !== 'head') throw new Error('first head');
  t.ok(first.interim);
  t.match(parseResponseHead(b, first.headEnd, MAX, false), { kind: 'head', status: 201, body: { kind: 'length', length: 2 }, headEnd: b.length - 2 });
});

t.test('incomplete heads', async (t) => {
  t.same(parseResponseHead(Buffer.alloc(0), 0, MAX, false), { kind: 'incomplete' });
  t.same(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nX: a'), 0, MAX, false), { kind: 'incomplete' });
});

t.test('field helpers', async (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  t.equal(connectionFlags(b(' close ,\tKeep-Alive, Upgrade ,x'), 0, 31), 7);
  t.equal(connectionFlags(b(''), 0, 0), 0);
  t.equal(decimalLength(b('123'), 0, 3), 123);
  t.equal(decimalLength(b('1a'), 0, 2), -1);
  t.equal(decimalLength(b(''), 0, 0), -1);
  const names = namesByLength(['Date', 'Vary']);
  t.equal(internedName(names, b('Vary'), 0, 4), 'Vary');
  t.equal(internedName(names, b('vary'), 0, 4), 'vary');
  t.equal(internedName(names, b('Server'), 0, 6), 'Server');
});

t.test('a limit that falls anywhere inside the head is too-large there, never a misparse', async (t) => {
  const b = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX:\r\n\r\nok', 'latin1');
  const headEnd = b.length - 2;
  for (let max = 1; max < headEnd; max++) t.match(parseResponseHead(b, 0, max, false), { kind: 'error', code: 'too-large' }, `limit ${max}`);
  t.match(parseResponseHead(b, 0, headEnd, false), { kind: 'head', headEnd });
});
