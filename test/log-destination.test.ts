/**
 * byteDestination (src/log.ts): the service log's strings and the access log's byte batches
 * go through one sonic-boom in buffer mode, land in the order written, byte for byte
 * (non-ASCII included), and nothing pending is lost by a flushSync before exit.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { byteDestination, type Destination } from '../src/log.js';

/** A byteDestination on a fresh file (removed after the test), once it is open. */
async function openDestination(t: Test, minLength: number): Promise<{ dest: Destination; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-dest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'out.log');
  const dest = byteDestination({ dest: path, sync: false, minLength });
  await new Promise((resolve) => dest.once('ready', resolve));
  return { dest, path };
}

t.test('strings and byte batches land in order, byte for byte', async (t) => {
  const { dest, path } = await openDestination(t, 4096);
  const expected = ['{"msg":"service é"}\n', '{"path":"/ü/€/😀"}\n{"path":"/b"}\n', '{"msg":"after"}\n'];
  dest.write(expected[0]!);
  dest.write(Buffer.from(expected[1]!, 'utf8'));
  dest.write(expected[2]!);
  t.equal(readFileSync(path, 'utf8'), '', 'held below minLength until flushed');
  dest.flushSync();
  t.equal(readFileSync(path, 'utf8'), expected.join(''), 'flushSync wrote everything, in order');
  dest.end();
});

t.test('a batch past minLength is written without a flush', async (t) => {
  const { dest, path } = await openDestination(t, 64);
  const batch = Buffer.from('x'.repeat(99) + '\n');
  dest.write(batch);
  await new Promise((resolve) => dest.once('write', resolve));
  t.equal(readFileSync(path, 'utf8'), batch.toString(), 'written on its own');
  dest.end();
});
