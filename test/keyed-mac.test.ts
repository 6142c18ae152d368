import t from 'tap';
import { createHmac } from 'node:crypto';
import { KeyedMac } from '../src/routing/keyed-mac.js';
import { RandomIds } from '../src/routing/random-ids.js';

t.test('KeyedMac equals createHmac sha256 for every key and text shape', async (t) => {
  const cases: { desc: string; secret: string; texts: string[] }[] = [
    { desc: 'short key', secret: 'new-secret-9876543210', texts: ['', 'client-0001.servoy-a', 'choice:/app/:servoy-a'] },
    { desc: 'key of exactly one block', secret: 'k'.repeat(64), texts: ['client-0001.servoy-a'] },
    { desc: 'key longer than a block (hashed first)', secret: 's'.repeat(65), texts: ['client-0001.servoy-a'] },
    { desc: 'non-ASCII key and text (UTF-8)', secret: 'sécret-ключ', texts: ['été.ü', '日本語'] },
    { desc: 'text longer than the scratch buffer, then short again', secret: 'secret', texts: ['x'.repeat(1000), 'y'] },
  ];
  for (const c of cases) {
    const keyed = new KeyedMac(c.secret);
    for (const text of c.texts) {
      t.equal(keyed.digest(text), createHmac('sha256', c.secret).update(text).digest('base64url'), `${c.desc}: ${text.slice(0, 20)}`);
    }
  }
});

t.test('RandomIds are base64url of the asked size and distinct across pool refills', async (t) => {
  const ids = new RandomIds(12);
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = ids.next();
    if (!/^[A-Za-z0-9_-]{16}$/.test(id)) t.fail(`bad id ${id}`);
    seen.add(id);
  }
  t.equal(seen.size, 1000);
});
