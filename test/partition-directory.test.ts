import t from 'tap';
import { join } from 'node:path';
import { PartitionDirectory } from '../src/state/partition-directory.js';
import { PartitionStore } from '../src/state/partition-store.js';
import { FileSharedState } from '../src/state/file-shared-state.js';
import { FileStateStore } from '../src/state/file-store.js';

/** openState is the file state store of a balancer in partition mode, on `dir`. */
function openState(dir: string): FileSharedState {
  const file = join(dir, 'state.json');
  return new FileSharedState(new FileStateStore(file), { version: 1 }, PartitionStore.open(file));
}

t.test('pins win, counts include pins, moves with --drain settle when done', async (t) => {
  const dir = t.testdir();
  const state = openState(dir);
  const directory = new PartitionDirectory(state.partitions!, state, { pinned: 'a' });
  t.same(await state.assignPartition('acme', 'b'), { record: state.partitions!.get('acme'), won: true });
  t.same((await state.assignPartition('acme', 'c')).won, false, 'the first writer wins');
  t.same((await state.assignPartition('acme', 'c', 'b')).won, true, 'a refused first attempt: moved, not assigned twice');
  t.same((await state.assignPartition('acme', 'a', 'b')).won, false, 'only the backend that refused is replaced');
  t.same(directory.lookup('acme'), { backend: 'c', pinned: false, previous: undefined });
  t.same(directory.lookup('pinned'), { backend: 'a', pinned: true });
  t.equal(directory.count('a'), 1, 'pins count for bounded load');
  t.equal(directory.total, 2);
  await directory.move('acme', 'a', true);
  t.equal(directory.lookup('acme')!.previous, 'c', 'the old server is remembered while draining');
  await state.close();

  // A restart mid-drain still knows the move is draining.
  const again = openState(dir);
  const reopened = new PartitionDirectory(again.partitions!, again, {});
  t.same(await reopened.settleDrainedMoves(() => false), [], 'not done yet');
  t.equal(reopened.lookup('acme')!.previous, 'c');
  t.same(await reopened.settleDrainedMoves((key) => key === 'acme'), ['acme']);
  t.equal(reopened.lookup('acme')!.previous, undefined, 'settled: the old server is forgotten');
  t.same(await reopened.settleDrainedMoves(() => true), [], 'nothing left');
  await reopened.move('acme', 'b', false);
  t.equal(reopened.lookup('acme')!.previous, undefined, 'a move without --drain never keeps the old server');

  // A change made elsewhere (another instance) is followed: a move with --drain until it settles.
  reopened.changed('acme', { key: 'acme', backend: 'a', assignedAt: 1, previous: 'b', movedAt: 2, drainPrevious: true });
  await again.movePartition('acme', 'a', true);
  t.same(await reopened.settleDrainedMoves(() => true), ['acme'], 'a move announced by onChange is settled here too');
  reopened.changed('acme', undefined);
  t.same(await reopened.settleDrainedMoves(() => true), [], 'a removed assignment is no longer followed');
  await again.close();
});

t.test('the file store: one instance, nothing shared', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'state.json');
  const state = new FileSharedState(new FileStateStore(file), { version: 1, cookieSecret: 's' }, undefined);
  t.equal(state.kind, 'file');
  t.equal(state.cookieSecret, 's');
  t.same(state.health(), { kind: 'file', ok: true });
  let told = 0;
  const stop = state.onChange(() => told++);
  state.publishSessions({ a: 1 });
  state.publishLearned('id', 'a');
  state.publishEvent({ at: 1, backend: 'a', what: 'drain' });
  stop();
  t.equal(told, 0, 'no change ever comes from elsewhere');
  await t.rejects(state.assignPartition('k', 'a'), /partition mode is not enabled/);
  await t.rejects(state.movePartition('k', 'a', false), /partition mode is not enabled/);
  await t.rejects(state.settlePartition('k'), /partition mode is not enabled/);
  const records = { added: [], removed: ['x'], admin: { a: { admin: 'draining' as const, since: 5 } }, weights: {} };
  await state.saveBackends(records);
  t.same(state.backendRecords(), records);
  const loaded = await new FileStateStore(file).load();
  t.same(loaded, { version: 1, cookieSecret: 's', backends: records }, 'saved in the state file, beside what was there');
  await state.close();
});
