import t, { type Test } from 'tap';
import {
  compilePartitionKey,
  MAX_KEY_LENGTH,
  MAX_SOURCE_LENGTH,
  normalizePartitionKey,
  type PartitionKeySpec,
  type PartitionRequest,
} from '../src/routing/partition-key.js';
import { readCookies } from '../src/routing/request-cookies.js';

type Spec = Omit<PartitionKeySpec, 'required'>;
interface Case {
  desc: string;
  spec: Spec;
  req: Partial<PartitionRequest>;
  want: string | undefined;
}

const request = (r: Partial<PartitionRequest>): PartitionRequest => ({
  host: undefined,
  url: '/',
  headers: {},
  cookieHeader: undefined,
  clientAddress: '192.0.2.1',
  ...r,
});
const reader = (spec: Spec) => compilePartitionKey({ required: false, ...spec });

function runTable(t: Test, cases: Case[]): void {
  for (const c of cases) {
    const got = reader(c.spec)(request(c.req));
    t.equal(got, c.want, c.desc);
  }
}

const long = (n: number, ch = 'a') => ch.repeat(n);
const MAX = MAX_KEY_LENGTH;

t.test('host', async (t) => {
  const host: Spec = { from: 'host' };
  const sub: Spec = { from: 'host', pattern: '^([a-z0-9-]+)\\.' };
  runTable(t, [
    { desc: 'plain', spec: host, req: { host: 'acme.example.com' }, want: 'acme.example.com' },
    { desc: 'lower-cased', spec: host, req: { host: 'ACME.Example.COM' }, want: 'acme.example.com' },
    { desc: 'trailing dot stripped', spec: host, req: { host: 'ACME.Example.COM.' }, want: 'acme.example.com' },
    { desc: 'port stripped', spec: host, req: { host: 'acme.example.com:8080' }, want: 'acme.example.com' },
    { desc: 'trailing dot and port', spec: host, req: { host: 'acme.example.com.:443' }, want: 'acme.example.com' },
    { desc: 'empty port (RFC 3986 *DIGIT)', spec: host, req: { host: 'acme.example.com:' }, want: 'acme.example.com' },
    { desc: 'non-numeric port', spec: host, req: { host: 'acme.example.com:80a' }, want: undefined },
    { desc: 'two colons', spec: host, req: { host: 'acme:1:2' }, want: undefined },
    { desc: 'bare IPv6 (invalid Host)', spec: host, req: { host: '::1' }, want: undefined },
    { desc: 'IPv6 literal with port', spec: host, req: { host: '[::1]:8080' }, want: '::1' },
    { desc: 'IPv6 literal', spec: host, req: { host: '[::1]' }, want: '::1' },
    { desc: 'IPv6 literal lower-cased', spec: host, req: { host: '[2001:DB8::1]:443' }, want: '2001:db8::1' },
    { desc: 'unclosed bracket', spec: host, req: { host: '[::1' }, want: undefined },
    { desc: 'junk after bracket', spec: host, req: { host: '[::1]x' }, want: undefined },
    { desc: 'bad port after bracket', spec: host, req: { host: '[::1]:x' }, want: undefined },
    { desc: 'empty brackets', spec: host, req: { host: '[]' }, want: undefined },
    { desc: 'IPv4 with port', spec: host, req: { host: '10.0.0.1:8080' }, want: '10.0.0.1' },
    { desc: 'only a dot', spec: host, req: { host: '.' }, want: undefined },
    { desc: 'only a port', spec: host, req: { host: ':8080' }, want: undefined },
    { desc: 'one trailing dot only', spec: host, req: { host: 'a..' }, want: 'a.' },
    { desc: 'no Host header', spec: host, req: { host: undefined }, want: undefined },
    { desc: 'empty Host header', spec: host, req: { host: '' }, want: undefined },
    { desc: 'whitespace trimmed', spec: host, req: { host: ' \tacme.example.com \t' }, want: 'acme.example.com' },
    { desc: 'control character', spec: host, req: { host: 'ac\u0001me.example.com' }, want: undefined },
    { desc: 'DEL character', spec: host, req: { host: 'acme\u007f.example.com' }, want: undefined },
    { desc: '256 characters kept', spec: host, req: { host: long(MAX) }, want: long(MAX) },
    { desc: '257 characters: no key, not truncated', spec: host, req: { host: long(MAX + 1) }, want: undefined },
    { desc: '256 characters plus port kept', spec: host, req: { host: `${long(MAX, 'A')}:80` }, want: long(MAX) },
    { desc: 'huge Host', spec: host, req: { host: long(100_000) }, want: undefined },
    { desc: 'pattern: subdomain', spec: sub, req: { host: 'acme.example.com' }, want: 'acme' },
    { desc: 'pattern sees the lower-cased host without port', spec: sub, req: { host: 'ACME.Example.COM.:8443' }, want: 'acme' },
    { desc: 'pattern: no match', spec: sub, req: { host: 'localhost' }, want: undefined },
    { desc: 'anchored pattern: other domain', spec: { from: 'host', pattern: '^([a-z]+)\\.example\\.com$' }, req: { host: 'acme.other.com' }, want: undefined },
    { desc: 'anchored pattern: trailing dot stripped first', spec: { from: 'host', pattern: '^([a-z]+)\\.example\\.com$' }, req: { host: 'acme.example.com.' }, want: 'acme' },
    { desc: 'pattern: group does not take part', spec: { from: 'host', pattern: '^(x)?acme' }, req: { host: 'acme.example.com' }, want: undefined },
    { desc: 'pattern: empty capture', spec: { from: 'host', pattern: '^([0-9]*)' }, req: { host: 'acme.example.com' }, want: undefined },
  ]);
});

t.test('header', async (t) => {
  const header: Spec = { from: 'header', name: 'X-Tenant' };
  runTable(t, [
    { desc: 'configured name matched lower-case', spec: header, req: { headers: { 'x-tenant': 'acme' } }, want: 'acme' },
    { desc: 'case kept', spec: header, req: { headers: { 'x-tenant': 'Acme' } }, want: 'Acme' },
    { desc: 'missing header', spec: header, req: { headers: { 'x-other': 'acme' } }, want: undefined },
    { desc: 'repeated header: first value', spec: header, req: { headers: { 'x-tenant': ['acme', 'evil'] } }, want: 'acme' },
    { desc: 'repeated header: first value trimmed', spec: header, req: { headers: { 'x-tenant': ['  acme ', 'evil'] } }, want: 'acme' },
    { desc: 'repeated header: first value empty', spec: header, req: { headers: { 'x-tenant': ['', 'evil'] } }, want: undefined },
    { desc: 'empty array', spec: header, req: { headers: { 'x-tenant': [] } }, want: undefined },
    { desc: 'joined string is taken whole', spec: header, req: { headers: { 'x-tenant': 'acme, evil' } }, want: 'acme, evil' },
    { desc: 'trimmed', spec: header, req: { headers: { 'x-tenant': ' \tacme\t ' } }, want: 'acme' },
    { desc: 'empty', spec: header, req: { headers: { 'x-tenant': '' } }, want: undefined },
    { desc: 'only whitespace', spec: header, req: { headers: { 'x-tenant': ' \t ' } }, want: undefined },
    { desc: 'inner whitespace kept', spec: header, req: { headers: { 'x-tenant': 'acme corp' } }, want: 'acme corp' },
    { desc: 'NUL', spec: header, req: { headers: { 'x-tenant': 'ac\u0000me' } }, want: undefined },
    { desc: 'newline at end is not trimmed away', spec: header, req: { headers: { 'x-tenant': 'acme\n' } }, want: undefined },
    { desc: 'inner tab', spec: header, req: { headers: { 'x-tenant': 'ac\tme' } }, want: undefined },
    { desc: 'DEL', spec: header, req: { headers: { 'x-tenant': 'acme\u007f' } }, want: undefined },
    { desc: 'lone surrogate', spec: header, req: { headers: { 'x-tenant': 'ac\ud800me' } }, want: undefined },
    { desc: 'non-ASCII kept', spec: header, req: { headers: { 'x-tenant': 'café' } }, want: 'café' },
    { desc: '256 characters', spec: header, req: { headers: { 'x-tenant': long(MAX) } }, want: long(MAX) },
    { desc: '257 characters', spec: header, req: { headers: { 'x-tenant': long(MAX + 1) } }, want: undefined },
    { desc: '256 characters plus whitespace', spec: header, req: { headers: { 'x-tenant': `  ${long(MAX)}  ` } }, want: long(MAX) },
    { desc: 'pattern', spec: { ...header, pattern: '^tenant-(\\w+)$' }, req: { headers: { 'x-tenant': 'tenant-acme' } }, want: 'acme' },
    { desc: 'pattern sees the trimmed value', spec: { ...header, pattern: '^tenant-(\\w+)$' }, req: { headers: { 'x-tenant': ' tenant-acme ' } }, want: 'acme' },
    { desc: 'pattern: no match', spec: { ...header, pattern: '^tenant-(\\w+)$' }, req: { headers: { 'x-tenant': 'acme' } }, want: undefined },
    { desc: 'pattern on first repeated value', spec: { ...header, pattern: '^t-(\\w+)' }, req: { headers: { 'x-tenant': ['t-one', 't-two'] } }, want: 'one' },
    { desc: 'pattern cuts a key out of a long value', spec: { ...header, pattern: 'id=(\\w+)' }, req: { headers: { 'x-tenant': `${long(MAX_SOURCE_LENGTH - 7, ' x')}id=acme`.slice(-MAX_SOURCE_LENGTH) } }, want: 'acme' },
    { desc: 'source longer than MAX_SOURCE_LENGTH', spec: { ...header, pattern: 'id=(\\w+)' }, req: { headers: { 'x-tenant': `${long(MAX_SOURCE_LENGTH)}id=acme` } }, want: undefined },
    { desc: 'pattern capture longer than 256', spec: { ...header, pattern: '^(.*)$' }, req: { headers: { 'x-tenant': long(MAX + 1) } }, want: undefined },
    { desc: 'capture trimmed', spec: { ...header, pattern: '^\\[(.*)\\]$' }, req: { headers: { 'x-tenant': '[ acme ]' } }, want: 'acme' },
  ]);
  t.equal(reader({ from: 'header', name: 'host' })(request({ headers: { host: 'Acme.Example.com:80' } })), 'Acme.Example.com:80', 'from header "Host" is not host-normalised');
});

t.test('cookie', async (t) => {
  const cookie: Spec = { from: 'cookie', name: 'tenant' };
  runTable(t, [
    { desc: 'only cookie', spec: cookie, req: { cookieHeader: 'tenant=acme' }, want: 'acme' },
    { desc: 'among others', spec: cookie, req: { cookieHeader: '_ga=GA1.2.3; tenant=acme; JSESSIONID=abc' }, want: 'acme' },
    { desc: 'first occurrence wins', spec: cookie, req: { cookieHeader: 'tenant=one; tenant=two' }, want: 'one' },
    { desc: 'case kept', spec: cookie, req: { cookieHeader: 'tenant=Acme' }, want: 'Acme' },
    { desc: 'names are case-sensitive', spec: cookie, req: { cookieHeader: 'TENANT=acme' }, want: undefined },
    { desc: 'name is a suffix of another', spec: cookie, req: { cookieHeader: 'xtenant=no; tenant=yes' }, want: 'yes' },
    { desc: 'name is a prefix of another', spec: cookie, req: { cookieHeader: 'tenantx=no' }, want: undefined },
    { desc: 'name inside a value', spec: cookie, req: { cookieHeader: 'a=tenant=no; b= tenant=no' }, want: undefined },
    { desc: 'name inside a multi-word name', spec: cookie, req: { cookieHeader: 'my tenant=no' }, want: undefined },
    { desc: 'spaces around name and value', spec: cookie, req: { cookieHeader: 'a=1;  tenant \t=  acme  ;b=2' }, want: 'acme' },
    { desc: 'no spaces', spec: cookie, req: { cookieHeader: 'a=1;tenant=acme;b=2' }, want: 'acme' },
    { desc: 'quoted', spec: cookie, req: { cookieHeader: 'tenant="acme"' }, want: 'acme' },
    { desc: 'lone quote kept', spec: cookie, req: { cookieHeader: 'tenant="acme' }, want: '"acme' },
    { desc: 'empty value', spec: cookie, req: { cookieHeader: 'tenant=; x=1' }, want: undefined },
    { desc: 'empty quoted value', spec: cookie, req: { cookieHeader: 'tenant=""' }, want: undefined },
    { desc: 'pair without "="', spec: cookie, req: { cookieHeader: 'tenant; x=1' }, want: undefined },
    { desc: 'value with "="', spec: cookie, req: { cookieHeader: 'tenant=a=b' }, want: 'a=b' },
    { desc: 'not percent-decoded', spec: cookie, req: { cookieHeader: 'tenant=a%20b' }, want: 'a%20b' },
    { desc: 'no Cookie header', spec: cookie, req: { cookieHeader: undefined }, want: undefined },
    { desc: 'empty Cookie header', spec: cookie, req: { cookieHeader: '' }, want: undefined },
    { desc: 'control character', spec: cookie, req: { cookieHeader: 'tenant=ac\u0002me' }, want: undefined },
    { desc: '256 characters', spec: cookie, req: { cookieHeader: `tenant=${long(MAX)}` }, want: long(MAX) },
    { desc: '257 characters', spec: cookie, req: { cookieHeader: `tenant=${long(MAX + 1)}` }, want: undefined },
    { desc: 'pattern', spec: { ...cookie, pattern: '^([^.]+)\\.' }, req: { cookieHeader: 'tenant=acme.v2' }, want: 'acme' },
    { desc: 'pattern: no match', spec: { ...cookie, pattern: '^([^.]+)\\.' }, req: { cookieHeader: 'tenant=acme' }, want: undefined },
  ]);
  t.equal(reader({ from: 'cookie', name: ' tenant ' })(request({ cookieHeader: 'tenant=acme' })), 'acme', 'configured name trimmed');
  t.equal(reader({ from: 'cookie', name: 'a=b' })(request({ cookieHeader: 'a=b=c' })), undefined, 'a name with "=" never matches');
  t.equal(reader({ from: 'cookie', name: ' ' })(request({ cookieHeader: ' = x' })), undefined, 'a blank name never matches');
});

t.test('query', async (t) => {
  const query: Spec = { from: 'query', name: 'tenant' };
  runTable(t, [
    { desc: 'only parameter', spec: query, req: { url: '/app?tenant=acme' }, want: 'acme' },
    { desc: 'among others', spec: query, req: { url: '/app?x=1&tenant=acme&y=2' }, want: 'acme' },
    { desc: 'first occurrence wins', spec: query, req: { url: '/app?tenant=one&tenant=two' }, want: 'one' },
    { desc: 'first occurrence empty', spec: query, req: { url: '/app?tenant=&tenant=two' }, want: undefined },
    { desc: 'first occurrence without "="', spec: query, req: { url: '/app?tenant&tenant=two' }, want: undefined },
    { desc: 'case kept', spec: query, req: { url: '/app?tenant=Acme' }, want: 'Acme' },
    { desc: 'names are case-sensitive', spec: query, req: { url: '/app?Tenant=acme' }, want: undefined },
    { desc: 'name prefix/suffix', spec: query, req: { url: '/app?tenants=no&xtenant=no' }, want: undefined },
    { desc: 'percent-decoded', spec: query, req: { url: '/app?tenant=ac%20me%21' }, want: 'ac me!' },
    { desc: '"+" is a space', spec: query, req: { url: '/app?tenant=ac+me' }, want: 'ac me' },
    { desc: '%2B is a plus', spec: query, req: { url: '/app?tenant=a%2Bb' }, want: 'a+b' },
    { desc: 'UTF-8', spec: query, req: { url: '/app?tenant=caf%C3%A9' }, want: 'café' },
    { desc: 'trimmed after decoding', spec: query, req: { url: '/app?tenant=+acme%20' }, want: 'acme' },
    { desc: 'encoded name', spec: query, req: { url: '/app?ten%61nt=acme' }, want: 'acme' },
    { desc: 'encoded name decoding to something else', spec: query, req: { url: '/app?tenant%3D=acme' }, want: undefined },
    { desc: 'malformed escape', spec: query, req: { url: '/app?tenant=%zz' }, want: undefined },
    { desc: 'truncated escape', spec: query, req: { url: '/app?tenant=acme%' }, want: undefined },
    { desc: 'truncated escape (one digit)', spec: query, req: { url: '/app?tenant=acme%4' }, want: undefined },
    { desc: 'invalid UTF-8', spec: query, req: { url: '/app?tenant=%E9' }, want: undefined },
    { desc: 'truncated UTF-8', spec: query, req: { url: '/app?tenant=%C3' }, want: undefined },
    { desc: 'encoded surrogate', spec: query, req: { url: '/app?tenant=%ED%A0%80' }, want: undefined },
    { desc: 'overlong UTF-8', spec: query, req: { url: '/app?tenant=%C0%AF' }, want: undefined },
    { desc: 'above U+10FFFF', spec: query, req: { url: '/app?tenant=%F4%90%80%80' }, want: undefined },
    { desc: '4-byte UTF-8', spec: query, req: { url: '/app?tenant=%F0%9F%98%80' }, want: '\u{1f600}' },
    { desc: 'lone continuation byte', spec: query, req: { url: '/app?tenant=%80' }, want: undefined },
    { desc: 'escape interrupted by a literal', spec: query, req: { url: '/app?tenant=%C3x%A9' }, want: undefined },
    { desc: 'malformed escape in another parameter', spec: query, req: { url: '/app?%zz=%zz&tenant=acme' }, want: 'acme' },
    { desc: 'malformed escape in a later one', spec: query, req: { url: '/app?tenant=acme&x=%' }, want: 'acme' },
    { desc: 'encoded NUL', spec: query, req: { url: '/app?tenant=ac%00me' }, want: undefined },
    { desc: 'encoded newline', spec: query, req: { url: '/app?tenant=acme%0A' }, want: undefined },
    { desc: 'fragment ends the query', spec: query, req: { url: '/app?x=1#tenant=acme' }, want: undefined },
    { desc: 'fragment after the value', spec: query, req: { url: '/app?tenant=acme#x' }, want: 'acme' },
    { desc: '"?" inside the value', spec: query, req: { url: '/app?tenant=a?b' }, want: 'a?b' },
    { desc: '";" is not a separator', spec: query, req: { url: '/app?x=1;tenant=acme' }, want: undefined },
    { desc: 'empty pairs', spec: query, req: { url: '/app?&&tenant=acme&' }, want: 'acme' },
    { desc: 'no query', spec: query, req: { url: '/app/tenant=acme' }, want: undefined },
    { desc: 'empty query', spec: query, req: { url: '/app?' }, want: undefined },
    { desc: 'absolute-form URL', spec: query, req: { url: 'http://h:8080/app?tenant=acme' }, want: 'acme' },
    { desc: '256 characters', spec: query, req: { url: `/?tenant=${long(MAX)}` }, want: long(MAX) },
    { desc: '257 characters', spec: query, req: { url: `/?tenant=${long(MAX + 1)}` }, want: undefined },
    { desc: '256 characters once decoded', spec: query, req: { url: `/?tenant=${'%41'.repeat(MAX)}` }, want: long(MAX, 'A') },
    { desc: 'raw value longer than MAX_SOURCE_LENGTH', spec: query, req: { url: `/?tenant=${'%41'.repeat(1400)}` }, want: undefined },
    { desc: 'pattern', spec: { ...query, pattern: '^(\\w+)-' }, req: { url: '/app?tenant=acme-prod' }, want: 'acme' },
    { desc: 'pattern sees the decoded value', spec: { ...query, pattern: '^(\\w+) ' }, req: { url: '/app?tenant=acme+prod' }, want: 'acme' },
  ]);
});

t.test('path', async (t) => {
  const first: Spec = { from: 'path', segment: 1 };
  const second: Spec = { from: 'path', segment: 2 };
  runTable(t, [
    { desc: 'segment 1', spec: first, req: { url: '/acme/servoy-webclient/index.html' }, want: 'acme' },
    { desc: 'segment 2', spec: second, req: { url: '/acme/servoy-webclient/index.html' }, want: 'servoy-webclient' },
    { desc: 'only segment', spec: first, req: { url: '/acme' }, want: 'acme' },
    { desc: 'trailing slash', spec: first, req: { url: '/acme/' }, want: 'acme' },
    { desc: 'query ignored', spec: first, req: { url: '/acme?x=/evil' }, want: 'acme' },
    { desc: 'segment only in the query', spec: second, req: { url: '/acme?x=/evil' }, want: undefined },
    { desc: 'fragment ignored', spec: second, req: { url: '/acme#/evil' }, want: undefined },
    { desc: 'too few segments', spec: { from: 'path', segment: 3 }, req: { url: '/a/b' }, want: undefined },
    { desc: 'root', spec: first, req: { url: '/' }, want: undefined },
    { desc: 'empty URL', spec: first, req: { url: '' }, want: undefined },
    { desc: 'asterisk-form', spec: first, req: { url: '*' }, want: undefined },
    { desc: 'no leading slash, no scheme', spec: first, req: { url: 'acme/x' }, want: undefined },
    { desc: 'case kept', spec: first, req: { url: '/Acme/x' }, want: 'Acme' },
    { desc: 'path parameters stripped', spec: first, req: { url: '/acme;jsessionid=abc.servoy-a/x' }, want: 'acme' },
    { desc: 'path parameters stripped at the end', spec: first, req: { url: '/acme;v=1;w=2' }, want: 'acme' },
    { desc: 'parameters-only segment dropped', spec: first, req: { url: '/;jsessionid=1/acme' }, want: 'acme' },
    { desc: 'percent-decoded', spec: first, req: { url: '/ac%20me/x' }, want: 'ac me' },
    { desc: '"+" is not a space in a path', spec: first, req: { url: '/a+b/x' }, want: 'a+b' },
    { desc: 'UTF-8', spec: first, req: { url: '/caf%C3%A9/x' }, want: 'café' },
    { desc: 'malformed escape', spec: first, req: { url: '/%zz/x' }, want: undefined },
    { desc: 'truncated escape', spec: first, req: { url: '/acme%/x' }, want: undefined },
    { desc: 'invalid UTF-8', spec: first, req: { url: '/%FF/x' }, want: undefined },
    { desc: 'malformed escape in another segment', spec: first, req: { url: '/acme/%zz' }, want: 'acme' },
    { desc: 'encoded slash', spec: first, req: { url: '/a%2Fb/x' }, want: undefined },
    { desc: 'encoded NUL', spec: first, req: { url: '/a%00b/x' }, want: undefined },
    { desc: 'double slash collapsed', spec: first, req: { url: '//acme/x' }, want: 'acme' },
    { desc: 'many slashes collapsed', spec: second, req: { url: '/acme///x' }, want: 'x' },
    { desc: '"." dropped', spec: first, req: { url: '/./acme/x' }, want: 'acme' },
    { desc: '".." removes the segment before', spec: first, req: { url: '/x/../acme/y' }, want: 'acme' },
    { desc: 'later ".." changes the key', spec: first, req: { url: '/acme/../evil/x' }, want: 'evil' },
    { desc: 'escaped ".."', spec: first, req: { url: '/x/%2e%2E/acme' }, want: 'acme' },
    { desc: 'half-escaped ".."', spec: first, req: { url: '/x/.%2e/acme' }, want: 'acme' },
    { desc: '".." with parameters', spec: first, req: { url: '/x/..;y=1/acme' }, want: 'acme' },
    { desc: '".." above the root', spec: first, req: { url: '/../acme' }, want: undefined },
    { desc: 'escaped ".." above the root', spec: first, req: { url: '/%2e%2e/acme' }, want: undefined },
    { desc: '"..." is an ordinary segment', spec: first, req: { url: '/.../x' }, want: '...' },
    { desc: 'dot-file segment', spec: first, req: { url: '/.well-known/x' }, want: '.well-known' },
    { desc: '".." beyond the wanted segment', spec: first, req: { url: '/acme/a/b/c/../../..' }, want: 'acme' },
    { desc: 'deep ".." back to a held segment', spec: second, req: { url: '/t/acme/a/b/c/d/../../../../x' }, want: 'acme' },
    { desc: '".." replaces the wanted segment', spec: second, req: { url: '/t/acme/../evil' }, want: 'evil' },
    { desc: '".." below the wanted depth', spec: second, req: { url: '/t/acme/../../x/y' }, want: 'y' },
    { desc: 'absolute-form URL', spec: first, req: { url: 'http://h:8080/acme/x?y' }, want: 'acme' },
    { desc: 'not absolute-form: "://" after the path started', spec: first, req: { url: 'a/b://h/acme' }, want: undefined },
    { desc: 'not absolute-form: no "//"', spec: first, req: { url: 'mailto:x/acme' }, want: undefined },
    { desc: 'absolute-form without path', spec: first, req: { url: 'http://h:8080' }, want: undefined },
    { desc: 'absolute-form with query only', spec: first, req: { url: 'http://h?x=/a' }, want: undefined },
    { desc: '256 characters', spec: first, req: { url: `/${long(MAX)}/x` }, want: long(MAX) },
    { desc: '257 characters', spec: first, req: { url: `/${long(MAX + 1)}/x` }, want: undefined },
    { desc: 'pattern', spec: { ...first, pattern: '^([a-z]+)-' }, req: { url: '/acme-prod/servoy-webclient/x' }, want: 'acme' },
    { desc: 'pattern sees the decoded segment', spec: { ...first, pattern: '^([a-z]+) ' }, req: { url: '/acme%20prod/x' }, want: 'acme' },
    { desc: 'pattern: no match', spec: { ...first, pattern: '^([a-z]+)-' }, req: { url: '/acme/x' }, want: undefined },
  ]);
  t.equal(reader({ from: 'path', segment: 1e9 })(request({ url: '/a/b' })), undefined, 'a huge segment number costs nothing');
  const read = reader(second);
  t.equal(read(request({ url: '/a/b/c' })), 'b', 'reader reused: first call');
  t.equal(read(request({ url: '/x/y' })), 'y', 'reader reused: no state leaks between calls');
  t.equal(read(request({ url: '/x' })), undefined, 'reader reused: fewer segments');
});

t.test('ip', async (t) => {
  const ip: Spec = { from: 'ip' };
  runTable(t, [
    { desc: 'IPv4', spec: ip, req: { clientAddress: '10.1.2.3' }, want: '10.1.2.3' },
    { desc: 'IPv4-mapped IPv6', spec: ip, req: { clientAddress: '::ffff:10.1.2.3' }, want: '10.1.2.3' },
    { desc: 'IPv4-mapped IPv6, upper case', spec: ip, req: { clientAddress: '::FFFF:10.1.2.3' }, want: '10.1.2.3' },
    { desc: 'not IPv4-mapped (hex tail)', spec: ip, req: { clientAddress: '::ffff:a01:203' }, want: '::ffff:a01:203' },
    { desc: 'IPv6 lower-cased', spec: ip, req: { clientAddress: '2001:DB8::1' }, want: '2001:db8::1' },
    { desc: 'loopback IPv6', spec: ip, req: { clientAddress: '::1' }, want: '::1' },
    { desc: 'short "::ffff:"', spec: ip, req: { clientAddress: '::ffff:' }, want: '::ffff:' },
    { desc: 'empty', spec: ip, req: { clientAddress: '' }, want: undefined },
    { desc: 'pattern: /16 prefix', spec: { ...ip, pattern: '^(\\d+\\.\\d+)\\.' }, req: { clientAddress: '::ffff:10.1.2.3' }, want: '10.1' },
    { desc: 'pattern: no match', spec: { ...ip, pattern: '^(\\d+\\.\\d+)\\.' }, req: { clientAddress: '::1' }, want: undefined },
  ]);
});

t.test('normalizePartitionKey', async (t) => {
  const cases: [string, string | undefined][] = [
    ['acme', 'acme'],
    [' acme\t', 'acme'],
    ['', undefined],
    [' \t', undefined],
    ['a b', 'a b'],
    ['a\rb', undefined],
    ['a\u007fb', undefined],
    ['\u00a0acme', '\u00a0acme'],
    ['a\ud83d\ude00', 'a\ud83d\ude00'],
    ['a\ud800', undefined],
    ['\ud800a', undefined],
    ['a\udc00', undefined],
    ['\ude00\ud83d', undefined],
    [long(MAX), long(MAX)],
    [long(MAX + 1), undefined],
  ];
  for (const [input, want] of cases) t.equal(normalizePartitionKey(input), want, JSON.stringify(input).slice(0, 40));
});

t.test('compile refuses what cross-checks refuse', async (t) => {
  t.throws(() => reader({ from: 'header' }), /name is required/);
  t.throws(() => reader({ from: 'cookie' }), /name is required/);
  t.throws(() => reader({ from: 'query' }), /name is required/);
  t.throws(() => reader({ from: 'path' }), /segment is required/);
  t.throws(() => reader({ from: 'path', segment: 0 }), /segment/);
  t.throws(() => reader({ from: 'host', pattern: '(' }));
  t.throws(() => reader({ from: 'host', pattern: '(a)(b)' }), /one capture group/);
  t.throws(() => reader({ from: 'host', pattern: 'a' }), /one capture group/);
  t.throws(() => reader({ from: 'nope' } as unknown as Spec), /not supported/);
  t.doesNotThrow(() => reader({ from: 'host', pattern: '(?:x)(a)(?=b)' }), 'non-capturing groups do not count');
});

t.test('linear on huge inputs', async (t) => {
  const started = Date.now();
  const mb = 1 << 18; // 256 KiB: a quadratic scan would take minutes, a linear one milliseconds
  t.equal(reader({ from: 'query', name: 'tenant' })(request({ url: `/?${'a&'.repeat(mb / 2)}tenant=acme` })), 'acme', 'many parameters without "="');
  t.equal(reader({ from: 'query', name: 'tenant' })(request({ url: `/?${'%2&'.repeat(mb / 3)}` })), undefined, 'many escaped names');
  t.equal(reader({ from: 'path', segment: 1 })(request({ url: `/acme${'/a/..'.repeat(mb / 5)}` })), 'acme', 'many dot segments');
  t.equal(reader({ from: 'path', segment: 1 })(request({ url: `${'/'.repeat(mb)}acme` })), 'acme', 'many empty segments');
  t.equal(reader({ from: 'cookie', name: 'tenant' })(request({ cookieHeader: `${'tenant tenant '.repeat(mb / 14)}; tenant=acme` })), 'acme', 'many false candidates');
  t.equal(reader({ from: 'cookie', name: 'aa' })(request({ cookieHeader: 'a'.repeat(mb) })), undefined, 'overlapping candidates');
  t.equal(reader({ from: 'host' })(request({ host: `${'a'.repeat(mb)}:80` })), undefined, 'huge Host');
  // Generous (a busy machine): linear takes milliseconds here, quadratic minutes.
  t.ok(Date.now() - started < 30_000, `done in ${Date.now() - started} ms`);
});

t.test('fuzz: nothing throws, every key obeys the rules', async (t) => {
  // xorshift32, seeded: failures are reproducible.
  let seed = 0x9e3779b9;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const alphabet = [
    'a', 'b', 't', 'A', 'Z', '0', '9', '-', '_', '.', '..', '/', '//', ';', '=', '&', '?', '#', ':', '[', ']', ' ', '\t', '+', '"', ',',
    '%', '%2', '%2e', '%2E', '%2F', '%41', '%C3%A9', '%E9', '%FF', '%00', '%zz', '%ED%A0%80', 't=', 'tenant', '::ffff:', '\u0000', '\u0001', '\n',
    '\u007f', '\u00e9', '\u00a0', '\u20ac', '\ud83d\ude00', '\ud800', '\udc00',
  ];
  const randomString = (): string => {
    const parts = rand(10) === 0 ? 200 + rand(400) : rand(24);
    let s = '';
    for (let i = 0; i < parts; i++) s += alphabet[rand(alphabet.length)];
    return s;
  };
  const specs: Record<string, Spec[]> = {
    host: [{ from: 'host' }, { from: 'host', pattern: '^([^.]*)\\.' }],
    header: [{ from: 'header', name: 't' }, { from: 'header', name: 't', pattern: '=(.*)' }],
    cookie: [{ from: 'cookie', name: 't' }, { from: 'cookie', name: 'tenant', pattern: '(.)$' }],
    query: [{ from: 'query', name: 't' }, { from: 'query', name: 'tenant', pattern: '^(\\S+)' }],
    path: [{ from: 'path', segment: 1 }, { from: 'path', segment: 2 }, { from: 'path', segment: 2, pattern: '(.*)' }],
    ip: [{ from: 'ip' }, { from: 'ip', pattern: '^(.*?):' }],
  };
  const requestFor = (from: string, s: string): PartitionRequest => {
    switch (from) {
      case 'host': return request({ host: s });
      case 'header': return request({ headers: { t: rand(4) === 0 ? [s, randomString()] : s } });
      case 'cookie': return request({ cookieHeader: rand(2) === 0 ? `t=${s}` : s });
      case 'query': return request({ url: rand(2) === 0 ? `/p?${rand(2) === 0 ? 't=' : ''}${s}` : s });
      case 'path': return request({ url: rand(3) === 0 ? s : `${rand(4) === 0 ? 'http://h' : ''}/${s}` });
      default: return request({ clientAddress: s });
    }
  };
  /** A plain (allocating) model of the path rules, to compare the scanner against. */
  const referencePath = (url: string, n: number): string | undefined => {
    let path: string;
    if (url.startsWith('/')) path = url.replace(/[?#][\s\S]*$/, '');
    else {
      const m = /^[^:/?#]*:\/\/[^/?#]*(\/[^?#]*)?/.exec(url);
      if (m?.[1] === undefined) return undefined;
      path = m[1];
    }
    const stack: string[] = [];
    for (const raw of path.split('/').slice(1)) {
      const segment = raw.replace(/;[\s\S]*$/, '');
      if (segment === '' || /^(?:\.|%2e)$/i.test(segment)) continue;
      if (/^(?:\.|%2e){2}$/i.test(segment)) {
        if (stack.pop() === undefined) return undefined;
        continue;
      }
      stack.push(segment);
    }
    const segment = stack[n - 1];
    if (segment === undefined || segment.length > MAX_SOURCE_LENGTH) return undefined;
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
    return decoded.includes('/') ? undefined : normalizePartitionKey(decoded);
  };
  const isKey = (key: string | undefined): boolean =>
    key === undefined || (key.length >= 1 && key.length <= MAX && normalizePartitionKey(key) === key);
  const ITERATIONS = process.env.FUZZ_LONG === '1' ? 100_000 : 10_000; // FUZZ_LONG=1: `npm run test:fuzz`
  for (const [from, list] of Object.entries(specs)) {
    const readers = list.map(reader);
    let bad = 0;
    let defined = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const s = randomString();
      const req = requestFor(from, s);
      for (const read of readers) {
        let key: string | undefined;
        try {
          key = read(req);
        } catch (err) {
          bad++;
          if (bad < 5) t.fail(`${from} threw on ${JSON.stringify(s)}: ${String(err)}`);
          continue;
        }
        if (key !== undefined) defined++;
        if (!isKey(key) || (from === 'host' && key !== undefined && list[0] === readers[0] && key !== key.toLowerCase())) {
          bad++;
          if (bad < 5) t.fail(`${from} gave ${JSON.stringify(key)} for ${JSON.stringify(s)}`);
        }
        if (from === 'cookie' && read === readers[0]) {
          // Same answer as the router's cookie scanner.
          const want = readCookies(req.cookieHeader, 't', 't').affinity;
          const expected = want === undefined || want.length > MAX_SOURCE_LENGTH ? undefined : normalizePartitionKey(want);
          if (key !== expected) {
            bad++;
            if (bad < 5) t.fail(`cookie ${JSON.stringify(s)}: ${JSON.stringify(key)} but readCookies says ${JSON.stringify(expected)}`);
          }
        }
        const spec = list[readers.indexOf(read)]!;
        if (from === 'path' && spec.pattern === undefined) {
          const want = referencePath(req.url, spec.segment!);
          if (key !== want) {
            bad++;
            if (bad < 5) t.fail(`path ${JSON.stringify(req.url)}: ${JSON.stringify(key)} but the model says ${JSON.stringify(want)}`);
          }
        }
        if (from === 'query' && read === readers[0] && key !== undefined) {
          // When we find a value, URLSearchParams (WHATWG) agrees on it.
          const url = req.url;
          const q = url.indexOf('?');
          const h = url.indexOf('#', q);
          const theirs = new URLSearchParams(url.slice(q + 1, h === -1 ? undefined : h)).get('t');
          if (theirs === null || normalizePartitionKey(theirs) !== key) {
            bad++;
            if (bad < 5) t.fail(`query ${JSON.stringify(url)}: ${JSON.stringify(key)} but URLSearchParams says ${JSON.stringify(theirs)}`);
          }
        }
      }
    }
    t.equal(bad, 0, `${from}: ${ITERATIONS} random inputs, ${defined} keys, all well-formed`);
  }
});

t.test('escape checking agrees with decodeURIComponent', async (t) => {
  // Random UTF-8 (boundary code points, corrupted and truncated sequences, stray lead and
  // continuation bytes) as %XX escapes mixed with literals: the readers must decode
  // exactly when decodeURIComponent can.
  let seed = 0x2545f491;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const bytes = [0x00, 0x20, 0x2f, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
  const edges = [0x20, 0x7e, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff];
  const pieces = ['a', '%', '%4', '%g0', '+'];
  const hex = (b: number): string => {
    const h = b.toString(16).padStart(2, '0');
    return `%${rand(2) === 0 ? h.toUpperCase() : h}`;
  };
  const codePoint = (): number => {
    switch (rand(5)) {
      case 0: return edges[rand(edges.length)]!;
      case 1: return 0x20 + rand(0x60);
      case 2: return 0x80 + rand(0x780);
      case 3: { const cp = 0x800 + rand(0xf800); return cp >= 0xd800 && cp <= 0xdfff ? cp + 0x800 : cp; }
      default: return 0x10000 + rand(0x100000);
    }
  };
  /** The UTF-8 escapes of a code point, all as %XX. */
  const escaped = (cp: number): number[] => [...new TextEncoder().encode(String.fromCodePoint(cp))];
  const readPath = reader({ from: 'path', segment: 1 });
  const readQuery = reader({ from: 'query', name: 'k' });
  let mismatches = 0;
  let decoded = 0;
  // FUZZ_LONG=1 (`npm run test:fuzz`): ten times as many, kept out of `npm test`.
  const rounds = process.env.FUZZ_LONG === '1' ? 100_000 : 10_000;
  for (let i = 0; i < rounds; i++) {
    let raw = '';
    for (let n = 1 + rand(5); n > 0; n--) {
      const roll = rand(20);
      if (roll === 0) raw += pieces[rand(pieces.length)];
      else if (roll <= 2) raw += hex(rand(3) === 0 ? rand(256) : bytes[rand(bytes.length)]!);
      else {
        const seq = escaped(codePoint());
        if (roll <= 4) seq[rand(seq.length)] = bytes[rand(bytes.length)]!; // corrupt one byte
        else if (roll === 5 && seq.length > 1) seq.pop(); // truncated
        raw += seq.map(hex).join('');
      }
    }
    let reference: string | undefined;
    try {
      reference = decodeURIComponent(raw);
    } catch {
      reference = undefined;
    }
    // "p" in front: never a dot-segment.
    const wantPath = reference === undefined || reference.includes('/') ? undefined : normalizePartitionKey(`p${reference}`);
    const gotPath = readPath(request({ url: `/p${raw}/x` }));
    let queryReference: string | undefined;
    try {
      queryReference = decodeURIComponent(raw.replaceAll('+', ' '));
    } catch {
      queryReference = undefined;
    }
    const wantQuery = queryReference === undefined ? undefined : normalizePartitionKey(queryReference);
    const gotQuery = readQuery(request({ url: `/?k=${raw}` }));
    if (gotQuery !== undefined) decoded++;
    if (gotPath !== wantPath || gotQuery !== wantQuery) {
      mismatches++;
      if (mismatches < 5) t.fail(`${JSON.stringify(raw)}: path ${JSON.stringify(gotPath)} want ${JSON.stringify(wantPath)}, query ${JSON.stringify(gotQuery)} want ${JSON.stringify(wantQuery)}`);
    }
  }
  t.equal(mismatches, 0, `${rounds} random escape sequences (${decoded} decodable)`);
  t.ok(decoded > rounds / 10 && decoded < rounds * 0.9, 'both outcomes are well represented');
});
