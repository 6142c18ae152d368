/**
 * readHandshakeAnswer (src/proxy/handshake-answer.ts) as a table: which backend answers to
 * a WebSocket handshake open a tunnel, which are relayed as refusals (and how much body
 * follows), and which the balancer answers with 502 instead. The head goes through the
 * strict response codec, so its refusals (two Content-Lengths, framing on a 1xx, ...) are
 * 'not-http' here too.
 */
import t from 'tap';
import { readHandshakeAnswer } from '../src/proxy/handshake-answer.js';

const LIMIT = 16 * 1024;
const read = (head: string): ReturnType<typeof readHandshakeAnswer> => readHandshakeAnswer(Buffer.from(`${head}\r\n\r\n`, 'latin1'), LIMIT);

const CASES: { desc: string; head: string; want: { kind: 'switch' } | { kind: 'invalid'; why: string } | { kind: 'refusal'; status: number; body: number | 'until-close' } }[] = [
  { desc: '101 with Upgrade: websocket', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade', want: { kind: 'switch' } },
  { desc: '101, Upgrade spelled WebSocket', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade', want: { kind: 'switch' } },
  { desc: '101 without a reason phrase', head: 'HTTP/1.1 101\r\nUpgrade: websocket', want: { kind: 'switch' } },
  { desc: '101 without Upgrade', head: 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade', want: { kind: 'invalid', why: 'not-websocket' } },
  { desc: '101 to h2c', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c', want: { kind: 'invalid', why: 'not-websocket' } },
  { desc: '101 to "websocketx"', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocketx', want: { kind: 'invalid', why: 'not-websocket' } },
  { desc: '100 Continue', head: 'HTTP/1.1 100 Continue', want: { kind: 'invalid', why: 'not-websocket' } },
  { desc: '103 Early Hints', head: 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload', want: { kind: 'invalid', why: 'not-websocket' } },
  { desc: '403 with a Content-Length', head: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9', want: { kind: 'refusal', status: 403, body: 9 } },
  { desc: 'the same Content-Length twice (refused like any response)', head: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nContent-Length: 9', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'a Transfer-Encoding other than chunked', head: 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip, chunked', want: { kind: 'invalid', why: 'not-http' } },
  { desc: '101 with a Content-Length (no framing on a 1xx)', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nContent-Length: 0', want: { kind: 'invalid', why: 'not-http' } },
  { desc: '100 Continue that closes the connection', head: 'HTTP/1.1 100 Continue\r\nConnection: close', want: { kind: 'invalid', why: 'not-http' } },
  { desc: '404 chunked', head: 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked', want: { kind: 'refusal', status: 404, body: 'until-close' } },
  { desc: '400 without a length', head: 'HTTP/1.1 400 Bad Request', want: { kind: 'refusal', status: 400, body: 'until-close' } },
  { desc: '204', head: 'HTTP/1.1 204 No Content', want: { kind: 'refusal', status: 204, body: 0 } },
  { desc: '304 with a Content-Length', head: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 100', want: { kind: 'refusal', status: 304, body: 0 } },
  { desc: 'two different Content-Lengths', head: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nContent-Length: 90', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'a Content-Length that is no number', head: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9x', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'Content-Length with Transfer-Encoding', head: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nTransfer-Encoding: chunked', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'not HTTP', head: 'SSH-2.0-OpenSSH_9.6', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'HTTP/2.0 status line', head: 'HTTP/2.0 101 Switching Protocols\r\nUpgrade: websocket', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'a bare CR in a header', head: 'HTTP/1.1 403 Forbidden\r\nX-A: a\rSet-Cookie: evil=1', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'a bare LF in a header', head: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\nSet-Cookie: evil=1', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'an obs-fold line', head: 'HTTP/1.1 403 Forbidden\r\nX-A: a\r\n folded', want: { kind: 'invalid', why: 'not-http' } },
  { desc: 'a NUL in the status line', head: 'HTTP/1.1 403 For\0bidden', want: { kind: 'invalid', why: 'not-http' } },
];

for (const { desc, head, want } of CASES) {
  t.test(desc, async (t) => {
    const got = read(head);
    t.equal(got.kind, want.kind);
    if (want.kind === 'refusal' && got.kind === 'refusal') t.same({ status: got.status, body: got.body }, { status: want.status, body: want.body });
    if (want.kind === 'invalid') t.same(got, want);
  });
}

t.test('a refusal\'s head keeps the backend\'s headers but none about its connection', async (t) => {
  const got = read('HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nProxy-Connection: keep-alive\r\nX-Reason: origin');
  t.equal(got.kind, 'refusal');
  if (got.kind === 'refusal') t.equal(got.head, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Reason: origin');
});

t.test('a switch is relayed as received; both answers say where the head ends', async (t) => {
  const head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection:  Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
  const got = readHandshakeAnswer(Buffer.from(`${head}\r\n\r\n\x81\x00`, 'latin1'), LIMIT);
  t.same(got, { kind: 'switch', head, headEnd: head.length + 4 }, 'the head as received; the frame after it is not part of it');
  const refusalHead = 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n';
  const refusal = readHandshakeAnswer(Buffer.from(`${refusalHead}nf`, 'latin1'), LIMIT);
  t.equal(refusal.kind === 'refusal' ? refusal.headEnd : -1, refusalHead.length, 'a refusal\'s body starts after its head');
});

t.test('incomplete until the head has ended; too large is not HTTP', async (t) => {
  const whole = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n';
  for (let n = 0; n < whole.length; n++) t.equal(readHandshakeAnswer(Buffer.from(whole.slice(0, n), 'latin1'), LIMIT).kind, 'incomplete', `${n} bytes`);
  t.equal(readHandshakeAnswer(Buffer.from(whole, 'latin1'), LIMIT).kind, 'switch');
  t.same(readHandshakeAnswer(Buffer.from(`HTTP/1.1 403 Forbidden\r\nX-Big: ${'x'.repeat(200)}`, 'latin1'), 64), { kind: 'invalid', why: 'not-http' }, 'a head past maxHeaderBytes');
});
