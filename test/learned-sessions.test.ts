import t from 'tap';
import { LearnedSessions } from '../src/sessions/learned-sessions.js';

t.test('learn, look up, forget', async (t) => {
  const table = new LearnedSessions({ max: 10, ttlMs: 60_000 });
  t.equal(table.backendOf('s1'), undefined);
  table.learn('s1', 'a');
  table.learn('s2', 'b');
  t.equal(table.backendOf('s1'), 'a');
  t.equal(table.backendOf('s2'), 'b');
  t.equal(table.size, 2);
  table.learn('s1', 'c');
  t.equal(table.backendOf('s1'), 'c', 'a later learn overrides');
  table.forget('s1');
  t.equal(table.backendOf('s1'), undefined);
  t.equal(table.size, 1);
  table.learn('', 'a');
  t.equal(table.size, 1, 'empty ids are not learned');
});

t.test('bounded: least recently used goes first', async (t) => {
  const table = new LearnedSessions({ max: 3, ttlMs: 0 });
  table.learn('s1', 'a');
  table.learn('s2', 'a');
  table.learn('s3', 'a');
  t.equal(table.backendOf('s1'), 'a'); // s1 now most recently used
  table.learn('s4', 'a');
  t.equal(table.size, 3);
  t.equal(table.backendOf('s2'), undefined, 's2 evicted');
  t.equal(table.backendOf('s1'), 'a');
});

t.test('idle entries expire; use keeps them alive', async (t) => {
  let now = 1_000;
  const table = new LearnedSessions({ max: 10, ttlMs: 1_000, now: () => now });
  table.learn('busy', 'a');
  table.learn('idle', 'b');
  now += 600;
  t.equal(table.backendOf('busy'), 'a');
  now += 600;
  t.equal(table.backendOf('busy'), 'a', 'touched within sessionIdle');
  t.equal(table.backendOf('idle'), undefined, 'idle longer than sessionIdle');
});

t.test('disabled with max 0', async (t) => {
  const table = new LearnedSessions({ max: 0, ttlMs: 1_000 });
  table.learn('s1', 'a');
  t.equal(table.backendOf('s1'), undefined);
  t.equal(table.size, 0);
  t.equal(table.learnFromSetCookie('JSESSIONID=s1', 'JSESSIONID', 'a'), undefined);
});

t.test('learnFromSetCookie', async (t) => {
  const past = new Date(Date.now() - 86_400_000).toUTCString();
  const future = new Date(Date.now() + 86_400_000).toUTCString();
  const cases: { desc: string; setCookie: string | string[] | undefined; known?: string; want: string | undefined; learned?: string; gone?: string }[] = [
    { desc: 'no header', setCookie: undefined, want: undefined },
    { desc: 'plain', setCookie: 'JSESSIONID=s1; Path=/; HttpOnly', want: 's1', learned: 's1' },
    { desc: 'bare', setCookie: 'JSESSIONID=s1', want: 's1', learned: 's1' },
    { desc: 'quoted', setCookie: 'JSESSIONID="s1"; Path=/', want: 's1', learned: 's1' },
    { desc: 'other cookie', setCookie: 'OTHER=x; Path=/', want: undefined },
    { desc: 'name is case-sensitive', setCookie: 'jsessionid=s1', want: undefined },
    { desc: 'among several', setCookie: ['a=1', 'JSESSIONID=s1; Path=/; Secure', 'b=2'], want: 's1', learned: 's1' },
    { desc: 'Max-Age=0 forgets', setCookie: 'JSESSIONID=s0; Path=/; Max-Age=0', known: 's0', want: undefined, gone: 's0' },
    { desc: 'negative Max-Age forgets', setCookie: 'JSESSIONID=s0; max-age=-1', known: 's0', want: undefined, gone: 's0' },
    { desc: 'attribute names in any case', setCookie: 'JSESSIONID=s0; Path=/; MAX-AGE=0', known: 's0', want: undefined, gone: 's0' },
    { desc: 'Expires in the past forgets', setCookie: `JSESSIONID=s0; Path=/; Expires=${past}`, known: 's0', want: undefined, gone: 's0' },
    { desc: 'Expires in the future learns', setCookie: `JSESSIONID=s1; Expires=${future}`, want: 's1', learned: 's1' },
    { desc: 'Max-Age wins over Expires', setCookie: `JSESSIONID=s1; Expires=${past}; Max-Age=60`, want: 's1', learned: 's1' },
    { desc: 'empty value is ignored', setCookie: 'JSESSIONID=; Max-Age=0', want: undefined },
    { desc: 'new session replaces old', setCookie: ['JSESSIONID=s0; Max-Age=0', 'JSESSIONID=s1; Path=/'], known: 's0', want: 's1', learned: 's1', gone: 's0' },
  ];
  for (const c of cases) {
    const table = new LearnedSessions({ max: 10, ttlMs: 60_000 });
    if (c.known !== undefined) table.learn(c.known, 'old');
    t.equal(table.learnFromSetCookie(c.setCookie, 'JSESSIONID', 'servoy-a'), c.want, `${c.desc}: return value`);
    if (c.learned !== undefined) t.equal(table.backendOf(c.learned), 'servoy-a', `${c.desc}: learned`);
    if (c.gone !== undefined) t.equal(table.backendOf(c.gone), undefined, `${c.desc}: forgotten`);
    if (c.learned === undefined && c.known === undefined) t.equal(table.size, 0, `${c.desc}: nothing learned`);
  }
});
