/**
 * The request-head checks (src/proxy/request-checks.ts) run before routing:
 * malformedRequest and refusedUpgrade read a ParsedRequest, which the raw codec's
 * RequestHead is as it is.
 * Tables, no sockets.
 */
import t from 'tap';
import { parseRequestHead } from '../src/proxy/codec/request-head.js';
import { malformedRequest, type ParsedRequest, refusedUpgrade } from '../src/proxy/request-checks.js';

const WS = ['Host', 'lb.test', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version', '13'];
const req = (over: Partial<ParsedRequest>): ParsedRequest => ({ method: 'GET', target: '/ws', versionMinor: 1, headers: WS, ...over });

t.test('malformedRequest', async (t) => {
  const cases: [string, ParsedRequest, boolean][] = [
    ['origin-form, one Host', req({}), false],
    ['HTTP/1.0 without Host', req({ versionMinor: 0, headers: [] }), false],
    ['HTTP/1.1 without Host', req({ headers: [] }), true],
    ['two Host headers', req({ headers: ['Host', 'a', 'host', 'b'] }), true],
    ['absolute-form target', req({ target: 'http://x/ws' }), true],
    ['"*" target', req({ target: '*' }), true],
    ['empty target', req({ target: '' }), true],
    ['not HTTP/1.x', req({ versionMinor: -1 }), true],
  ];
  for (const [name, r, want] of cases) t.equal(malformedRequest(r), want, name);
});

t.test('refusedUpgrade: only a plain HTTP/1.1 GET asking for websocket, without a body', async (t) => {
  const cases: [string, ParsedRequest, boolean][] = [
    ['a WebSocket handshake', req({}), false],
    ['Upgrade value in another case', req({ headers: ['Host', 'h', 'upgrade', 'WebSocket'] }), false],
    ['Content-Length: 0', req({ headers: [...WS, 'Content-Length', '0'] }), false],
    ['POST', req({ method: 'POST' }), true],
    ['HTTP/1.0', req({ versionMinor: 0 }), true],
    ['h2c', req({ headers: ['Host', 'h', 'Upgrade', 'h2c'] }), true],
    ['no Upgrade header', req({ headers: ['Host', 'h'] }), true],
    ['two Upgrade headers', req({ headers: [...WS, 'Upgrade', 'websocket'] }), true],
    ['a Content-Length body', req({ headers: [...WS, 'Content-Length', '5'] }), true],
    ['Transfer-Encoding', req({ headers: [...WS, 'Transfer-Encoding', 'chunked'] }), true],
    ['malformed (two Host)', req({ headers: [...WS, 'Host', 'other'] }), true],
  ];
  for (const [name, r, want] of cases) t.equal(refusedUpgrade(r), want, name);
});

t.test('the raw codec\'s RequestHead is a ParsedRequest as it is', async (t) => {
  const bytes = Buffer.from('GET /ws HTTP/1.1\r\nHost: lb.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'latin1');
  const head = parseRequestHead(bytes, 0, 16384);
  if (head.kind !== 'head') throw new Error(`not parsed: ${head.kind}`);
  t.equal(refusedUpgrade(head), false, 'a handshake the codec accepted passes');
  t.equal(refusedUpgrade({ ...head, method: 'PUT' }), true);
});
