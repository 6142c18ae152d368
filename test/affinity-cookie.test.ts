import t from 'tap';
import { AffinityCookieCodec } from '../src/routing/affinity-cookie.js';

const OLD = 'old-secret-0123456789';
const NEW = 'new-secret-9876543210';

t.test('sign and verify round trip', async (t) => {
  const codec = new AffinityCookieCodec([NEW]);
  const clientId = codec.newClientId();
  t.match(clientId, /^[A-Za-z0-9_-]{16}$/);
  const value = codec.sign(clientId, 'servoy-a');
  t.match(value, new RegExp(`^${clientId}\\.servoy-a\\.[A-Za-z0-9_-]{22}$`));
  t.same(codec.verify(value), { clientId, backendId: 'servoy-a' });
  t.same(codec.verify(value), { clientId, backendId: 'servoy-a' }, 'second time (from the cache)');
  t.not(codec.newClientId(), clientId, 'client ids are random');
});

t.test('forged and tampered cookies are rejected', async (t) => {
  const codec = new AffinityCookieCodec([NEW]);
  const value = codec.sign('client-0001', 'servoy-a');
  const [clientId, backendId, mac] = value.split('.') as [string, string, string];
  const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
  const cases: { desc: string; raw: string }[] = [
    { desc: 'forged mac', raw: `${clientId}.${backendId}.${flip(mac)}` },
    { desc: 'tampered backend id', raw: `${clientId}.servoy-b.${mac}` },
    { desc: 'tampered client id', raw: `client-0002.${backendId}.${mac}` },
    { desc: 'signed with another secret', raw: new AffinityCookieCodec(['some-other-secret-xyz']).sign(clientId, backendId) },
    { desc: 'mac truncated', raw: `${clientId}.${backendId}.${mac.slice(0, 21)}` },
    { desc: 'mac too long', raw: `${value}A` },
  ];
  for (const c of cases) t.equal(codec.verify(c.raw), undefined, c.desc);
  t.same(codec.verify(value), { clientId, backendId }, 'the genuine one still verifies');
});

t.test('key rotation: the first secret signs, every secret verifies', async (t) => {
  const before = new AffinityCookieCodec([OLD]);
  const during = new AffinityCookieCodec([NEW, OLD]);
  const after = new AffinityCookieCodec([NEW]);
  const oldCookie = before.sign('client-0001', 'servoy-a');
  const newCookie = during.sign('client-0001', 'servoy-a');
  t.not(newCookie, oldCookie);
  t.same(during.verify(oldCookie), { clientId: 'client-0001', backendId: 'servoy-a' }, 'old cookie accepted during rotation');
  t.same(during.verify(newCookie), { clientId: 'client-0001', backendId: 'servoy-a' });
  t.equal(newCookie, after.sign('client-0001', 'servoy-a'), 'signs with the first secret');
  t.equal(after.verify(oldCookie), undefined, 'old cookie rejected once the old secret is gone');
  t.same(after.verify(newCookie), { clientId: 'client-0001', backendId: 'servoy-a' });
});

t.test('malformed values', async (t) => {
  const codec = new AffinityCookieCodec([NEW]);
  const mac22 = 'A'.repeat(22);
  const cases: { desc: string; raw: string }[] = [
    { desc: 'empty', raw: '' },
    { desc: 'no dots', raw: 'abcdefghijklmnop' },
    { desc: 'one dot', raw: 'abcdefgh.servoy-a' },
    { desc: 'four parts', raw: `abcdefgh.servoy.a.${mac22}` },
    { desc: 'empty client id', raw: `.servoy-a.${mac22}` },
    { desc: 'client id too short', raw: `abc.servoy-a.${mac22}` },
    { desc: 'client id too long', raw: `${'a'.repeat(65)}.servoy-a.${mac22}` },
    { desc: 'empty backend id', raw: `abcdefgh..${mac22}` },
    { desc: 'backend id too long', raw: `abcdefgh.${'b'.repeat(65)}.${mac22}` },
    { desc: 'bad character in backend id', raw: `abcdefgh.servoy a.${mac22}` },
    { desc: 'bad character in client id', raw: `abcd+fgh.servoy-a.${mac22}` },
    { desc: 'bad character in mac', raw: `abcdefgh.servoy-a.${'A'.repeat(21)}=` },
    { desc: 'non-ASCII', raw: `abcdéfgh.servoy-a.${mac22}` },
    { desc: 'oversized', raw: 'x'.repeat(10_000) },
  ];
  for (const c of cases) t.equal(codec.verify(c.raw), undefined, c.desc);
});

t.test('sign refuses ids the cookie cannot carry', async (t) => {
  const codec = new AffinityCookieCodec([NEW]);
  t.throws(() => codec.sign('short', 'servoy-a'));
  t.throws(() => codec.sign('client-0001', 'servoy.a'));
  t.throws(() => codec.sign('client-0001', ''));
  t.throws(() => new AffinityCookieCodec([]));
  t.throws(() => new AffinityCookieCodec(['']));
});

t.test('serialize', async (t) => {
  const codec = new AffinityCookieCodec([NEW]);
  const cases: { desc: string; attrs: Parameters<AffinityCookieCodec['serialize']>[1]; want: string }[] = [
    { desc: 'browser-session cookie', attrs: { name: 'SERVOYLB', secure: false, sameSite: 'Lax' }, want: 'SERVOYLB=v; Path=/; HttpOnly; SameSite=Lax' },
    { desc: 'secure', attrs: { name: 'SERVOYLB', secure: true, sameSite: 'Strict' }, want: 'SERVOYLB=v; Path=/; HttpOnly; SameSite=Strict; Secure' },
    { desc: 'SameSite=None forces Secure', attrs: { name: 'LB', secure: false, sameSite: 'None' }, want: 'LB=v; Path=/; HttpOnly; SameSite=None; Secure' },
    { desc: 'persistent', attrs: { name: 'LB', secure: true, sameSite: 'Lax', maxAgeMs: 43_200_500 }, want: 'LB=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=43200' },
  ];
  for (const c of cases) t.equal(codec.serialize('v', c.attrs), c.want, c.desc);
});
