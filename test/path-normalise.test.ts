/**
 * Path normalisation and path rules as pure functions (SPEC "Path rules"): the path is
 * normalised the way Tomcat sees it, and no encoding trick reaches a denied prefix. The
 * bypass table runs every attempt against a `deny` rule on /servoy-admin/ and an `allow`
 * rule on /servoy-developer/ (client outside the list): each must be refused (400), or
 * matched to the rule (403), or normalise to a path outside the prefix that Tomcat would
 * not map to it either. Plus the positive cases, the picker and the backend-choice cookie.
 */
import t from 'tap';
import { normalisePath } from '../src/routing/path-normalise.js';
import { explainPath, judgePath, PathRules } from '../src/routing/path-rules.js';
import { pickStateless, routeStateless } from '../src/routing/stateless.js';
import { choiceFromCookies, choiceFromQuery, choiceSetCookie, routeChosen, signChoice } from '../src/routing/backend-choice.js';
import { AffinityCookieCodec } from '../src/routing/affinity-cookie.js';
import { pathReport } from '../src/cli/admin-commands.js';
import { codec, pool } from './helpers/routing.js';

const RULES = PathRules.compile([
  { prefix: '/servoy-service/rest_ws/', affinity: 'none' },
  { prefix: '/servoy-admin/', deny: true },
  { prefix: '/servoy-developer/', allow: ['10.0.0.0/8', '::1'] },
  { prefix: '/servoy-developer/public', deny: true },
])!;
const OUTSIDER = '192.0.2.7';
const INSIDER = '10.1.2.3';

t.test('normal paths', async (t) => {
  const cases: [string, string, string[]?][] = [
    ['/', '/'],
    ['/index.html', '/index.html'],
    ['/servoy-admin/', '/servoy-admin/'],
    ['/a/b/c?x=1&y=/../', '/a/b/c'],
    ['/solutions/app/index.html;jsessionid=ABC.servoy-a', '/solutions/app/index.html', ['jsessionid=ABC.servoy-a']],
    ['/solutions/app/index.html;jsessionid=ABC.servoy-a?x=1', '/solutions/app/index.html', ['jsessionid=ABC.servoy-a']],
    ['/a;v=1/b;x;y=2/c', '/a/b/c', ['v=1', 'x', 'y=2']],
    ['/my%20file.txt', '/my file.txt'],
    ['/caf%C3%A9/%E6%97%A5%E6%9C%AC', '/café/日本'],
    ['/emoji/%F0%9F%98%80', '/emoji/😀'],
    ['/a%3bb', '/a;b'],
    ['/a/./b/../c/', '/a/c/'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a//b///c', '/a/b/c'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a/..b/c', '/a/..b/c'],
    ['/%252e/', '/%2e/'],
    ['/resources/upload/%7Bid%7D', '/resources/upload/{id}'],
  ];
  for (const [target, path, parameters = []] of cases) {
    t.same(normalisePath(target), { ok: true, path, parameters }, target);
  }
});

t.test('paths that cannot be normalised safely', async (t) => {
  const cases = [
    '/a%2fb', '/a%2Fb', '/a%5cb', '/a%5Cb', '/a\\b', '/a%00b', '/a%', '/a%2', '/a%zz', '/a%g0',
    '/..', '/../', '/a/../..', '/%2e%2e/', '/a/%2E%2E/%2e%2e/x', '/..;x/a',
    '/%c0%ae%c0%ae/', '/%c0%af', '/%e0%80%af', '/%c1%9c', '/%ed%a0%80', '/%ff', '/%80',
    '/a#b', '/a%09b', '/a%0d%0a', '/a%7f', '/a b', 'a/b', '*', 'http://x/a',
  ];
  for (const target of cases) t.match(normalisePath(target), { ok: false, reason: String }, target);
});

/** Bypass attempts: every one must get 400 or 403, or land outside the prefix as Tomcat sees it. */
const BYPASSES: { target: string; want: 'bad-path' | 'denied' | 'outside' }[] = [
  // The plain path and its forms without a trailing slash.
  { target: '/servoy-admin/', want: 'denied' },
  { target: '/servoy-admin', want: 'denied' },
  { target: '/servoy-admin/index.html?x=1', want: 'denied' },
  // Encoded dots, slashes and backslashes, either case.
  { target: '/%73ervoy-admin/', want: 'denied' },
  { target: '/servoy%2Dadmin/', want: 'denied' },
  { target: '/servoy-admin%2f', want: 'bad-path' },
  { target: '/servoy-admin%2F', want: 'bad-path' },
  { target: '/x%2f..%2fservoy-admin/', want: 'bad-path' },
  { target: '/servoy-admin%5c', want: 'bad-path' },
  { target: '/servoy-admin%5C', want: 'bad-path' },
  { target: '/x/..%5cservoy-admin/', want: 'bad-path' },
  { target: '/x\\..\\servoy-admin/', want: 'bad-path' },
  { target: '/servoy-admin\\', want: 'bad-path' },
  { target: '/%2e/servoy-admin/', want: 'denied' },
  { target: '/%2E/servoy-admin/', want: 'denied' },
  { target: '/x/%2e%2e/servoy-admin/', want: 'denied' },
  { target: '/x/%2E%2E/servoy-admin/', want: 'denied' },
  { target: '/x/.%2e/servoy-admin/', want: 'denied' },
  { target: '/x/%2e./servoy-admin/', want: 'denied' },
  // Dot segments and repeated slashes.
  { target: '//servoy-admin/', want: 'denied' },
  { target: '///servoy-admin//x', want: 'denied' },
  { target: '/./servoy-admin/', want: 'denied' },
  { target: '/x/../servoy-admin/', want: 'denied' },
  { target: '/x/y/../../servoy-admin/', want: 'denied' },
  { target: '/servoy-admin/./', want: 'denied' },
  { target: '/servoy-admin/x/..', want: 'denied' },
  { target: '/servoy-admin/.', want: 'denied' },
  { target: '/../servoy-admin/', want: 'bad-path' },
  { target: '/x/../../servoy-admin/', want: 'bad-path' },
  // Path parameters (Tomcat sets them aside before decoding).
  { target: '/servoy-admin;/', want: 'denied' },
  { target: '/servoy-admin;jsessionid=x/', want: 'denied' },
  { target: '/servoy-admin;x=1', want: 'denied' },
  { target: '/;x/servoy-admin/', want: 'denied' },
  { target: '/x/..;/servoy-admin/', want: 'denied' },
  { target: '/.;x/servoy-admin/', want: 'denied' },
  { target: '/..;/servoy-admin/', want: 'bad-path' },
  { target: '/servoy-admin%3b/', want: 'outside' }, // Tomcat: the segment "servoy-admin;" (no such servlet)
  // Double encoding: decoded once, as Tomcat does.
  { target: '/%252e/servoy-admin/', want: 'outside' }, // the segment "%2e", not "."
  { target: '/x/%252e%252e/servoy-admin/', want: 'outside' },
  { target: '/servoy-admin%252f', want: 'outside' },
  // Overlong and invalid UTF-8.
  { target: '/x/%c0%ae%c0%ae/servoy-admin/', want: 'bad-path' },
  { target: '/x%c0%afservoy-admin/', want: 'bad-path' },
  { target: '/x%e0%80%af..%e0%80%afservoy-admin/', want: 'bad-path' },
  { target: '/x%c1%9c..%c1%9cservoy-admin/', want: 'bad-path' },
  { target: '/servoy-admin%c0%af', want: 'bad-path' },
  { target: '/servoy-admin%ff/', want: 'bad-path' },
  // NUL, control characters, whitespace, fragment.
  { target: '/servoy-admin%00/', want: 'bad-path' },
  { target: '/servoy-admin/%00', want: 'bad-path' },
  { target: '/servoy-admin%09/', want: 'bad-path' },
  { target: '/servoy-admin%0a/', want: 'bad-path' },
  { target: '/%20/../servoy-admin/', want: 'denied' },
  { target: '/servoy-admin%20/', want: 'outside' }, // the segment "servoy-admin " (Tomcat does not trim)
  { target: '/x#/../servoy-admin/', want: 'bad-path' },
  // Case: Tomcat's paths are case-sensitive, so these are other paths on the backend too.
  { target: '/SERVOY-ADMIN/', want: 'outside' },
  { target: '/Servoy-Admin/', want: 'outside' },
  // Look-alikes that are other paths.
  { target: '/servoy-administrator/', want: 'outside' },
  { target: '/servoy-admin.jsp', want: 'outside' },
  { target: '/%EF%BC%8Fservoy-admin/', want: 'outside' }, // U+FF0F fullwidth solidus is no "/"
];

t.test(`${BYPASSES.length} bypass attempts against a denied /servoy-admin/ and an allow rule`, async (t) => {
  t.ok(BYPASSES.length >= 40, 'at least 40 attempts');
  for (const { target, want } of BYPASSES) {
    const verdict = judgePath(RULES, target, OUTSIDER);
    if (want === 'bad-path') t.equal(verdict.kind, 'bad-path', `${target} -> 400`);
    else if (want === 'denied') t.match(verdict, { kind: 'denied', rule: { prefix: '/servoy-admin/' } }, `${target} -> 403`);
    else {
      const normalised = normalisePath(target);
      t.ok(normalised.ok && !normalised.path.startsWith('/servoy-admin/') && normalised.path !== '/servoy-admin', `${target} -> outside (${normalised.ok ? normalised.path : ''})`);
      t.equal(verdict.kind, 'none', `${target}: no rule`);
    }
    // The same trick against the allow rule: refused for an outsider, never let through.
    const developer = target.replace(/admin/g, 'developer').replace(/ADMIN/g, 'DEVELOPER').replace(/Admin/g, 'Developer');
    const other = judgePath(RULES, developer, OUTSIDER);
    t.not(other.kind, 'allowed', `${developer}: an outsider is never allowed`);
    if (want === 'denied') t.match(other, { kind: 'denied', rule: { prefix: '/servoy-developer/' } }, `${developer} -> 403 for an outsider`);
  }
});

t.test('longest prefix wins, on segment boundaries; allow checks the client address', async (t) => {
  t.match(judgePath(RULES, '/servoy-developer/x', INSIDER), { kind: 'allowed', rule: { prefix: '/servoy-developer/' } });
  t.match(judgePath(RULES, '/servoy-developer/x', '::ffff:10.9.9.9'), { kind: 'allowed' }, 'IPv4-mapped IPv6');
  t.match(judgePath(RULES, '/servoy-developer/x', '::1'), { kind: 'allowed' });
  t.match(judgePath(RULES, '/servoy-developer/x', OUTSIDER), { kind: 'denied' });
  t.match(judgePath(RULES, '/servoy-developer/x', 'unknown'), { kind: 'denied' }, 'a non-address is not in any list');
  t.match(judgePath(RULES, '/servoy-developer/public/a', INSIDER), { kind: 'denied', rule: { prefix: '/servoy-developer/public' } }, 'the longer prefix wins');
  t.match(judgePath(RULES, '/servoy-developer/public', INSIDER), { kind: 'denied' }, 'a prefix without slash matches the path itself');
  t.match(judgePath(RULES, '/servoy-developer/publication', INSIDER), { kind: 'allowed', rule: { prefix: '/servoy-developer/' } }, '... but not a longer segment');
  t.match(judgePath(RULES, '/servoy-service/rest_ws/app/form/1', OUTSIDER), { kind: 'stateless' });
  t.match(judgePath(RULES, '/servoy-service/rest_ws', OUTSIDER), { kind: 'stateless' });
  t.match(judgePath(RULES, '/servoy-service/other', OUTSIDER), { kind: 'none' });
  const root = PathRules.compile([{ prefix: '/', affinity: 'none' }, { prefix: '/a', deny: true }])!;
  t.match(judgePath(root, '/x/y', OUTSIDER), { kind: 'stateless' }, '"/" matches everything');
  t.match(judgePath(root, '/a/y', OUTSIDER), { kind: 'denied' });
  t.equal(PathRules.compile([]), undefined, 'no rules: nothing compiled, nothing to do per request');
  t.equal(PathRules.compile(undefined), undefined);
});

t.test('explainPath', async (t) => {
  t.match(explainPath(RULES, '/x/../servoy-admin/a', undefined), { normalised: '/servoy-admin/a', rule: { prefix: '/servoy-admin/', kind: 'deny' }, verdict: 'denied', reason: /403/ });
  t.match(explainPath(RULES, '/servoy-developer/', undefined), { verdict: 'restricted', reason: /10\.0\.0\.0\/8/ });
  t.match(explainPath(RULES, '/servoy-developer/', INSIDER), { verdict: 'allowed' });
  t.match(explainPath(RULES, '/servoy-developer/', OUTSIDER), { verdict: 'denied', reason: /192\.0\.2\.7 gets 403/ });
  t.match(explainPath(RULES, '/servoy-service/rest_ws/x', undefined), { verdict: 'stateless', rule: { kind: 'stateless' } });
  t.match(explainPath(RULES, '/a%2fb', undefined), { normalised: null, verdict: 'bad-path', reason: /%2f.*400/ });
  t.match(explainPath(RULES, '/other', undefined), { verdict: 'none', rule: null });
  t.match(explainPath(undefined, '/other', undefined), { verdict: 'none', reason: /no path rules/ });
  t.equal(
    pathReport(explainPath(RULES, '/x/../servoy-admin/a', undefined)),
    'path /x/../servoy-admin/a (normalised: /servoy-admin/a): denied, rule "/servoy-admin/" (deny)\nwhy: paths[1] (prefix "/servoy-admin/") denies everyone: the client gets 403 and no backend sees the request',
    'servoy-lb route --path prints the verdict, the rule and why',
  );
  t.equal(pathReport(explainPath(RULES, '/a%2fb', undefined)).split('\n')[0], 'path /a%2fb: bad-path, no rule');
});

t.test('stateless picker: fewest in flight, ties in turn, exclude respected', async (t) => {
  const snapshot = pool([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd', state: 'draining' }, { id: 'e', state: 'down' }]);
  const none = () => 0;
  const picks = Array.from({ length: 6 }, (_, turn) => pickStateless(snapshot.acceptingNew, none, turn)?.id);
  t.same(picks, ['a', 'b', 'c', 'a', 'b', 'c'], 'sequential calls spread in turn; draining and down servers take none');
  const busy: Record<string, number> = { a: 3, b: 1, c: 1 };
  t.same([0, 1, 2, 3].map((turn) => pickStateless(snapshot.acceptingNew, (id) => busy[id] ?? 0, turn)?.id), ['b', 'c', 'b', 'c'], 'the least busy, in turn');
  t.equal(pickStateless(snapshot.acceptingNew, (id) => busy[id] ?? 0, 0, new Set(['b']))?.id, 'c', 'exclude');
  t.equal(pickStateless(snapshot.acceptingNew, none, 0, new Set(['a', 'b', 'c'])), undefined, 'everything excluded');
  t.match(routeStateless(snapshot, none, 4), { kind: 'backend', backend: { id: 'b' }, reason: 'stateless', setCookie: false, clientId: undefined });
  t.match(routeStateless(pool([{ id: 'a', state: 'down' }]), none, 0), { kind: 'unavailable', reason: 'no-backend' });
  t.equal(pickStateless(snapshot.acceptingNew, none, 2 ** 32 + 1)?.id, 'b', 'a large turn number wraps');
});

t.test('backend choice: query parameter, signed cookie per prefix, routing', async (t) => {
  t.equal(choiceFromQuery('/servoy-admin/?servoy-lb-backend=servoy-b'), 'servoy-b');
  t.equal(choiceFromQuery('/servoy-admin/?a=1&servoy-lb-backend=servoy-b&c=2'), 'servoy-b');
  t.equal(choiceFromQuery('/servoy-admin/?xservoy-lb-backend=servoy-b'), undefined);
  t.equal(choiceFromQuery('/servoy-admin/?servoy-lb-backend='), '');
  t.equal(choiceFromQuery('/servoy-admin/'), undefined);
  const value = signChoice(codec, '/servoy-admin/', 'servoy-b');
  const header = `JSESSIONID=x; SERVOYLB_BACKEND=${value}`;
  t.equal(choiceFromCookies(codec, header, 'SERVOYLB_BACKEND', '/servoy-admin/'), 'servoy-b');
  t.equal(choiceFromCookies(codec, header, 'SERVOYLB_BACKEND', '/servoy-developer/'), undefined, 'not valid under another prefix');
  t.equal(choiceFromCookies(codec, `SERVOYLB_BACKEND=${value.replace('servoy-b', 'servoy-c')}`, 'SERVOYLB_BACKEND', '/servoy-admin/'), undefined, 'another id with the same MAC is refused');
  t.equal(choiceFromCookies(new AffinityCookieCodec(['another-secret-0123456789']), header, 'SERVOYLB_BACKEND', '/servoy-admin/'), undefined, 'another secret');
  t.equal(choiceFromCookies(new AffinityCookieCodec(['new-secret-0123456789abc', 'test-secret-0123456789']), header, 'SERVOYLB_BACKEND', '/servoy-admin/'), 'servoy-b', 'rotated secrets still accept it');
  t.equal(choiceFromCookies(codec, `SERVOYLB_BACKEND=garbage; SERVOYLB_BACKEND=${value}`, 'SERVOYLB_BACKEND', '/servoy-admin/'), 'servoy-b', 'the genuine one of several');
  t.equal(codec.verify(value), undefined, 'not an affinity cookie');
  t.equal(choiceSetCookie('SERVOYLB_BACKEND', value, '/my app/', true), `SERVOYLB_BACKEND=${value}; Path=/my%20app/; Max-Age=3600; HttpOnly; SameSite=Strict; Secure`);
  const snapshot = pool([{ id: 'a' }, { id: 'b', state: 'draining' }, { id: 'c', state: 'down' }, { id: 'd', state: 'disabled' }]);
  t.match(routeChosen('a', snapshot), { kind: 'backend', backend: { id: 'a' }, reason: 'chosen-backend', setCookie: false });
  t.match(routeChosen('b', snapshot), { kind: 'backend', backend: { id: 'b' } }, 'a draining server still serves');
  t.match(routeChosen('c', snapshot), { kind: 'unavailable' }, 'down: 503');
  t.match(routeChosen('d', snapshot), { kind: 'unavailable' }, 'disabled: 503');
  t.match(routeChosen('zz', snapshot), { kind: 'unavailable' }, 'unknown: 503');
});
