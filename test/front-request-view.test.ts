/**
 * RawRequestView (src/proxy/front/request-view.ts) joins repeated headers as node:http
 * does, so requests route on the same facts as on node:http; relayedResponseHeaders
 * (src/proxy/response-headers.ts) drops hop-by-hop response headers. Tables, no sockets.
 */
import t from 'tap';
import { RawRequestView } from '../src/proxy/front/request-view.js';
import { relayedResponseHeaders } from '../src/proxy/response-headers.js';

t.test('request view: node:http\'s joining rules', async (t) => {
  const cases: [string, string[], Partial<Record<'host' | 'cookie' | 'forwardedFor' | 'userAgent' | 'referer', string | undefined>>][] = [
    ['nothing', ['Accept', '*/*'], { host: undefined, cookie: undefined, forwardedFor: undefined, userAgent: undefined, referer: undefined }],
    ['one of each', ['Host', 'a', 'Cookie', 'x=1', 'X-Forwarded-For', '1.2.3.4', 'User-Agent', 'ua', 'Referer', 'r'], { host: 'a', cookie: 'x=1', forwardedFor: '1.2.3.4', userAgent: 'ua', referer: 'r' }],
    ['cookies joined with "; "', ['cookie', 'a=1', 'COOKIE', 'b=2'], { cookie: 'a=1; b=2' }],
    ['X-Forwarded-For joined with ", "', ['x-forwarded-for', '1.1.1.1', 'X-Forwarded-For', '2.2.2.2'], { forwardedFor: '1.1.1.1, 2.2.2.2' }],
    ['the first User-Agent and Referer', ['user-agent', 'one', 'User-Agent', 'two', 'referer', 'r1', 'Referer', 'r2'], { userAgent: 'one', referer: 'r1' }],
    ['names of the same length are not confused', ['Origin', 'o', 'Accept-Encoding', 'gzip', 'Upgrade', 'ws', 'Connection', 'x', 'Date', 'd'], { host: undefined, cookie: undefined, forwardedFor: undefined, userAgent: undefined, referer: undefined }],
  ];
  for (const [name, raw, want] of cases) {
    const view = new RawRequestView('10.0.0.1', '/p', raw);
    for (const [k, v] of Object.entries(want)) t.equal(view[k as keyof typeof want], v, `${name}: ${k}`);
    t.equal(view.peer, '10.0.0.1');
    t.equal(view.url, '/p');
  }
  t.same(new RawRequestView(undefined, '/', ['X-A', '1', 'x-a', '2', 'Host', 'h']).headers(), Object.assign(Object.create(null), { 'x-a': ['1', '2'], host: ['h'] }), 'headers(): distinct values by lower-case name');
});

t.test('relayed response headers: hop-by-hop and Connection-named ones dropped, session cookies heard', async (t) => {
  const heard: string[] = [];
  const out = relayedResponseHeaders(
    ['Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'X-A', '1', 'Connection', 'X-A, close', 'Set-Cookie', 'JSESSIONID=1', 'Set-Cookie', 'other=2', 'set-cookie', 'jsessionid'],
    'jsessionid=',
    { sessionCookieSet: (v) => void heard.push(v) },
  );
  t.same(out, ['Set-Cookie', 'JSESSIONID=1', 'Set-Cookie', 'other=2', 'set-cookie', 'jsessionid']);
  t.same(heard, ['JSESSIONID=1'], 'only values that start with the session cookie\'s name=');
  t.same(relayedResponseHeaders(['Connection', ' , close', 'X-B', '2'], 'j=', { sessionCookieSet: () => undefined }), ['X-B', '2'], 'a Connection value naming nothing removes nothing');
});
