import t from 'tap';
import { join } from 'node:path';
import { PartitionDirectory } from '../src/state/partition-directory.js';
import { PartitionStore } from '../src/state/partition-store.js';

t.test('pins win, counts include pins, moves with --drain settle when done', async (t) => {
  const dir = t.testdir();
  const store = PartitionStore.open(join(dir, 'state.json'));
  const directory = new PartitionDirectory(store, { pinned: 'a' });
  directory.assign('acme', 'b');
  directory.assign('acme', 'c'); // a refused first attempt: moved, not assigned twice
  t.same(directory.lookup('acme'), { backend: 'c', pinned: false, previous: undefined });
  t.same(directory.lookup('pinned'), { backend: 'a', pinned: true });
  t.equal(directory.count('a'), 1, 'pins count for bounded load');
  t.equal(directory.total, 2);
  directory.move('acme', 'a', true);
  t.equal(directory.lookup('acme')!.previous, 'c', 'the old server is remembered while draining');
  await store.close();

  // A restart mid-drain still knows the move is draining.
  const reopened = new PartitionDirectory(PartitionStore.open(join(dir, 'state.json')), {});
  t.same(reopened.settleDrainedMoves(() => false), [], 'not done yet');
  t.equal(reopened.lookup('acme')!.previous, 'c');
  t.same(reopened.settleDrainedMoves((key) => key === 'acme'), ['acme']);
  t.equal(reopened.lookup('acme')!.previous, undefined, 'settled: the old server is forgotten');
  t.same(reopened.settleDrainedMoves(() => true), [], 'nothing left');
  reopened.move('acme', 'b', false);
  t.equal(reopened.lookup('acme')!.previous, undefined, 'a move without --drain never keeps the old server');
  await reopened.store.close();
});
