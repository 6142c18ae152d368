import t from 'tap';
import { emptyRecords, mergeBackends, readRecords } from '../src/state/backend-records.js';

const b = (id: string, weight = 1) => ({ id, url: `http://127.0.0.1:1/${id}`.replace(/\/\w+$/, ''), weight, route: id });

t.test('mergeBackends applies the documented rule', async (t) => {
  const cases = [
    { desc: 'nothing recorded: the file', config: ['a', 'b'], records: emptyRecords(), want: ['a', 'b'], runtime: [], keep: { added: [], removed: [] } },
    { desc: 'added at run time', config: ['a'], records: { added: [b('x')], removed: [], admin: {} }, want: ['a', 'x'], runtime: ['x'], keep: { added: ['x'], removed: [] } },
    { desc: 'the file now lists the added one: file wins, record dropped', config: ['a', 'x'], records: { added: [b('x', 9)], removed: [], admin: {} }, want: ['a', 'x'], runtime: [], keep: { added: [], removed: [] } },
    { desc: 'removed at run time', config: ['a', 'b'], records: { added: [], removed: ['b'], admin: {} }, want: ['a'], runtime: [], keep: { added: [], removed: ['b'] } },
    { desc: 'the file no longer lists the removed one: record dropped', config: ['a'], records: { added: [], removed: ['b'], admin: {} }, want: ['a'], runtime: [], keep: { added: [], removed: [] } },
  ];
  for (const c of cases) {
    const merged = mergeBackends(c.config.map((id) => b(id)), c.records);
    t.same(merged.backends.map((x) => x.id), c.want, c.desc);
    t.same([...merged.source].filter(([, s]) => s === 'runtime').map(([id]) => id), c.runtime, `${c.desc}: sources`);
    t.same(merged.records.added.map((x) => x.id), c.keep.added, `${c.desc}: added kept`);
    t.same(merged.records.removed, c.keep.removed, `${c.desc}: removed kept`);
  }
  const fileWins = mergeBackends([b('x', 1)], { added: [b('x', 9)], removed: [], admin: {} });
  t.equal(fileWins.backends[0]!.weight, 1, "the file's entry is used");
});

t.test('admin records follow the backend and go when it goes', async (t) => {
  const merged = mergeBackends([b('a')], { added: [], removed: [], admin: { a: { admin: 'draining', since: 5 }, gone: { admin: 'disabled' } } });
  t.same(merged.records.admin, { a: { admin: 'draining', since: 5 } });
});

t.test('readRecords tolerates missing or damaged parts', async (t) => {
  t.same(readRecords({}), emptyRecords());
  t.same(readRecords({ backends: { added: 'x', removed: [1, 'b'], admin: null } }), { added: [], removed: ['b'], admin: {}, weights: {} });
  t.same(readRecords({ backends: { added: [{ id: 'x', url: 'http://h' }, { id: 3 }] } }).added, [{ id: 'x', url: 'http://h' }]);
});

t.test('a run-time weight wins until the file says the same weight', async (t) => {
  const records = (weights: Record<string, number>, extra: object = {}) => ({ added: [], removed: [], admin: {}, weights, ...extra });
  const cases = [
    { desc: 'recorded weight overrides the file', config: [b('a', 1), b('b', 1)], records: records({ a: 5 }), weights: [5, 1], keep: { a: 5 } },
    { desc: 'the file now says the same weight: record dropped', config: [b('a', 5)], records: records({ a: 5 }), weights: [5], keep: {} },
    { desc: 'the file changed to yet another weight: run time still wins', config: [b('a', 3)], records: records({ a: 5 }), weights: [5], keep: { a: 5 } },
    { desc: 'the backend left the file: record dropped', config: [b('b', 1)], records: records({ a: 5 }), weights: [1], keep: {} },
    { desc: 'removed at run time: record dropped', config: [b('a', 1), b('b', 1)], records: records({ a: 5 }, { removed: ['a'] }), weights: [1], keep: {} },
  ];
  for (const c of cases) {
    const merged = mergeBackends(c.config, c.records);
    t.same(merged.backends.map((x) => x.weight), c.weights, c.desc);
    t.same(merged.records.weights, c.keep, `${c.desc}: records`);
  }
  t.same(readRecords({ backends: { weights: { a: 3, b: 0, c: 'x', d: 1001, e: 2.5 } } }).weights, { a: 3 }, 'readRecords keeps only valid weights');
});
