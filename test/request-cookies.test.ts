import t from 'tap';
import { readCookies, routeOfSessionId, sessionIdFromPath } from '../src/routing/request-cookies.js';

t.test('readCookies', async (t) => {
  const cases: { desc: string; header: string | undefined; affinity?: string; session?: string }[] = [
    { desc: 'no header', header: undefined },
    { desc: 'empty header', header: '' },
    { desc: 'only whitespace and separators', header: ' ;  ; ' },
    { desc: 'neither cookie', header: 'a=1; b=2' },
    { desc: 'both', header: 'SERVOYLB=c.a.m; JSESSIONID=abc.servoy-a', affinity: 'c.a.m', session: 'abc.servoy-a' },
    { desc: 'reverse order, no spaces', header: 'JSESSIONID=abc;SERVOYLB=x', affinity: 'x', session: 'abc' },
    { desc: 'among others', header: '_ga=GA1.2.3; SERVOYLB=x; theme=dark; JSESSIONID=s1; z=9', affinity: 'x', session: 's1' },
    { desc: 'first occurrence wins', header: 'JSESSIONID=first; JSESSIONID=second; SERVOYLB=a; SERVOYLB=b', affinity: 'a', session: 'first' },
    { desc: 'spaces around names and values', header: '  SERVOYLB  =  x  ;\tJSESSIONID= s1 ', affinity: 'x', session: 's1' },
    { desc: 'quoted value', header: 'JSESSIONID="abc.servoy-b"; SERVOYLB="q"', affinity: 'q', session: 'abc.servoy-b' },
    { desc: 'lone quote is kept', header: 'JSESSIONID="abc', session: '"abc' },
    { desc: 'empty value', header: 'JSESSIONID=; SERVOYLB=x', affinity: 'x', session: '' },
    { desc: 'name is a prefix of another', header: 'JSESSIONIDX=no; XJSESSIONID=no; SERVOYLB2=no', },
    { desc: 'names are case-sensitive', header: 'jsessionid=no; servoylb=no' },
    { desc: 'pair without "=" is skipped', header: 'SERVOYLB; JSESSIONID=s1', session: 's1' },
    { desc: 'value containing "="', header: 'SERVOYLB=a=b; JSESSIONID=s', affinity: 'a=b', session: 's' },
    { desc: 'trailing separator', header: 'JSESSIONID=s;', session: 's' },
    { desc: 'name without value at end', header: 'JSESSIONID', },
  ];
  for (const c of cases) {
    t.same(readCookies(c.header, 'SERVOYLB', 'JSESSIONID'), { affinity: c.affinity, session: c.session }, c.desc);
  }
  t.same(readCookies('A=1; B=2', 'A', 'A'), { affinity: '1', session: '1' }, 'same name for both');
});

t.test('sessionIdFromPath', async (t) => {
  const cases: { desc: string; url: string; want: string | undefined }[] = [
    { desc: 'no path parameter', url: '/servoy-ngclient/index.html?a=1', want: undefined },
    { desc: 'root', url: '/', want: undefined },
    { desc: 'at end of path', url: '/app/index.html;jsessionid=abc.servoy-a', want: 'abc.servoy-a' },
    { desc: 'before the query', url: '/app/index.html;jsessionid=abc.servoy-a?x=1;jsessionid=no', want: 'abc.servoy-a' },
    { desc: 'only in the query', url: '/app/index.html?x=;jsessionid=abc', want: undefined },
    { desc: 'only in the fragment', url: '/app#;jsessionid=abc', want: undefined },
    { desc: 'upper case name', url: '/app;JSESSIONID=ABC.b', want: 'ABC.b' },
    { desc: 'mixed case name', url: '/app;JSessionId=x1', want: 'x1' },
    { desc: 'after another path parameter', url: '/app;foo=1;jsessionid=s2;bar=2', want: 's2' },
    { desc: 'in a middle segment', url: '/app;jsessionid=s3/more', want: 's3' },
    { desc: 'empty value', url: '/app;jsessionid=?x', want: undefined },
    { desc: 'name only', url: '/app;jsessionid', want: undefined },
    { desc: 'longer name', url: '/app;jsessionidx=abc', want: undefined },
    { desc: 'other parameter', url: '/app;v=1', want: undefined },
  ];
  for (const c of cases) t.equal(sessionIdFromPath(c.url), c.want, c.desc);
  t.equal(sessionIdFromPath('/app;mysession=z', 'MYSESSION'), 'z', 'configurable parameter name');
});

t.test('routeOfSessionId', async (t) => {
  const cases: { sessionId: string; want: string | undefined }[] = [
    { sessionId: 'ABC123.servoy-a', want: 'servoy-a' },
    { sessionId: 'ABC123', want: undefined },
    { sessionId: 'ABC123.', want: undefined },
    { sessionId: '.r', want: 'r' },
    { sessionId: 'A.b.c', want: 'b.c' },
    { sessionId: '', want: undefined },
  ];
  for (const c of cases) t.equal(routeOfSessionId(c.sessionId), c.want, JSON.stringify(c.sessionId));
});
