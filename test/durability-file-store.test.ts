/**
 * FileStateStore on its own (src/state/file-store.ts): every save keeps the state before it
 * as `<file>.prev`; a missing, empty, truncated or garbled state file is reported in one
 * sentence naming the file and the previous good copy is used (the damaged file moved aside,
 * the file restored); both bad is one StateFileError sentence saying what to do; temp files
 * left by a killed writer are removed; and a writer killed with SIGKILL at random moments
 * always leaves a state file that loads, holding every acknowledged save.
 * The kill -9 part runs test/fixtures/state-writer.mjs from dist/ (`npx tsc -p .` first).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStateStore, StateFileError } from '../src/state/file-store.js';
import { repoRoot } from './helpers/processes.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-durability-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const readJson = (file: string): any => JSON.parse(readFileSync(file, 'utf8'));

t.test('a fresh store loads an empty state; saves keep the previous state in .prev', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  const store = new FileStateStore(file);
  t.same(await store.load(), { version: 1 }, 'no file: a fresh state');
  t.same(store.loadReport, { source: 'none', warnings: [] });
  t.equal(store.prevFile, `${file}.prev`);

  await store.save({ version: 1, n: 1 });
  t.same(readJson(file), { version: 1, n: 1 });
  t.notOk(existsSync(`${file}.prev`), 'nothing to keep after the first save');

  await store.save({ version: 1, n: 2 });
  t.same(readJson(file), { version: 1, n: 2 });
  t.same(readJson(`${file}.prev`), { version: 1, n: 1 }, '.prev holds the state before the last save');
  t.equal(statSync(file).mode & 0o777, 0o600, 'the state file is private (it holds the cookie secret)');

  // Saves issued at once are written in call order; .prev is the one before the last.
  await Promise.all(Array.from({ length: 50 }, (_, i) => store.save({ version: 1, n: 10 + i })));
  t.same(readJson(file), { version: 1, n: 59 });
  t.same(readJson(`${file}.prev`), { version: 1, n: 58 });
  t.same(readdirSync(dir).sort(), ['state.json', 'state.json.prev'], 'no temp file left behind');

  const again = new FileStateStore(file);
  t.same(await again.load(), { version: 1, n: 59 });
  t.same(again.loadReport, { source: 'file', warnings: [] }, 'a good file loads without a word');
  await again.save({ version: 1, n: 60 });
  t.same(readJson(`${file}.prev`), { version: 1, n: 59 }, 'a loaded good file is rotated into .prev');
});

const DAMAGE: Record<string, (good: string) => string> = {
  garbage: () => 'this is not JSON \u0000\u0001\u00ff garbage',
  truncated: (good) => good.slice(0, Math.floor(good.length / 2)),
  empty: () => '',
  'not an object': () => '[1, 2, 3]\n',
};

for (const [kind, damage] of Object.entries(DAMAGE)) {
  t.test(`a ${kind} state file: one warning naming it, the previous good copy is used`, async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'state.json');
    const store = new FileStateStore(file);
    await store.save({ version: 1, cookieSecret: 'old', backends: { added: [], removed: [], admin: { a: { admin: 'draining' } } } });
    await store.save({ version: 1, cookieSecret: 'old', backends: { added: [], removed: [], admin: { a: { admin: 'disabled' } } } });
    const damaged = damage(readFileSync(file, 'utf8'));
    writeFileSync(file, damaged);

    const recovered = new FileStateStore(file);
    const data = await recovered.load();
    t.same(data, { version: 1, cookieSecret: 'old', backends: { added: [], removed: [], admin: { a: { admin: 'draining' } } } }, 'the previous good copy');
    t.equal(recovered.loadReport.source, 'prev');
    t.equal(recovered.loadReport.warnings.length, 1, 'exactly one warning');
    const [warning] = recovered.loadReport.warnings;
    t.match(warning, new RegExp(`state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged \\(.+\\); loaded the previous good copy .*state\\.json\\.prev`), warning);
    t.notMatch(warning, /\n/, 'one line');
    const aside = readdirSync(dir).filter((n) => n.startsWith('state.json.corrupt-'));
    t.equal(aside.length, 1, 'the damaged file is kept aside for inspection');
    t.equal(readFileSync(join(dir, aside[0]!), 'utf8'), damaged, 'as it was');
    t.same(readJson(file), data, 'the state file is restored from the good copy');
    t.same(readJson(`${file}.prev`), data, '.prev is untouched');

    // Saving again after the recovery: both files stay good.
    await recovered.save({ ...data, n: 1 });
    t.same(readJson(file), { ...data, n: 1 });
    t.same(readJson(`${file}.prev`), data);
    const reload = new FileStateStore(file);
    t.same(await reload.load(), { ...data, n: 1 });
    t.same(reload.loadReport.warnings, [], 'the next start is clean');
  });
}

t.test('a missing state file with a good .prev: the copy is used, with one warning', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  writeFileSync(`${file}.prev`, JSON.stringify({ version: 1, cookieSecret: 's' }));
  const store = new FileStateStore(file);
  t.same(await store.load(), { version: 1, cookieSecret: 's' });
  t.equal(store.loadReport.source, 'prev');
  t.equal(store.loadReport.warnings.length, 1);
  t.match(store.loadReport.warnings[0], /state file .*state\.json is missing; loaded the previous copy .*state\.json\.prev/);
  t.same(readJson(file), { version: 1, cookieSecret: 's' }, 'restored');
});

t.test('both bad: one StateFileError sentence that names the file and says what to do', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  const cases: Array<[string, string | undefined, string | undefined, RegExp]> = [
    ['garbled, no .prev', '{"version": 1, "cook', undefined, /^state file \S+state\.json is damaged \(not valid JSON: .*\) and there is no previous copy \S+state\.json\.prev; restore it from a backup, or move it away to start with a fresh state/],
    ['garbled, .prev garbled', 'garbage', '{{{', /^state file \S+state\.json is damaged \(.*\) and its previous copy \S+\.prev is damaged too \(.*\); restore it from a backup/],
    ['missing, .prev garbled', undefined, '', /^state file \S+state\.json is missing and its previous copy \S+\.prev is damaged \(it is empty\); restore \S+ from a backup, or delete \S+\.prev to start with a fresh state/],
  ];
  for (const [name, main, prev, expected] of cases) {
    rmSync(file, { force: true });
    rmSync(`${file}.prev`, { force: true });
    if (main !== undefined) writeFileSync(file, main);
    if (prev !== undefined) writeFileSync(`${file}.prev`, prev);
    const err = await new FileStateStore(file).load().then(() => undefined, (e: Error) => e);
    t.type(err, StateFileError, name);
    t.match(err?.message, expected, name);
    t.notMatch(err?.message, /\n/, `${name}: one line`);
    t.equal(existsSync(file), main !== undefined, `${name}: nothing moved or rewritten`);
  }
});

t.test('a state file that cannot be read (a directory) is an error, not a fallback', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  mkdirSync(file);
  writeFileSync(`${file}.prev`, JSON.stringify({ version: 1 }));
  await t.rejects(new FileStateStore(file).load(), { name: 'StateFileError', message: /^cannot read state file .*state\.json: / });
});

t.test('temp files left by a killed writer are removed on load; other files are not', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  writeFileSync(file, JSON.stringify({ version: 1 }));
  for (const name of ['.state.json.4242.tmp', '.state.json.prev.4242.tmp', '.state.json.partitions.tmp', '.other.json.4242.tmp', 'state.json.partitions']) {
    writeFileSync(join(dir, name), 'x');
  }
  await new FileStateStore(file).load();
  t.same(readdirSync(dir).sort(), ['.other.json.4242.tmp', '.state.json.partitions.tmp', 'state.json', 'state.json.partitions']);
});

/** Runs the writer fixture until `killAfterAcks` saves were acknowledged, then SIGKILLs it. */
async function writeAndKill(file: string, killAfterAcks: number): Promise<{ ready: string; lastAcked: number; lastStarted: number }> {
  const child = spawn(process.execPath, [join(repoRoot, 'test', 'fixtures', 'state-writer.mjs'), file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let acks = 0;
  let killed = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    acks += (c.match(/^A /gm) ?? []).length;
    if (!killed && acks >= killAfterAcks) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(guard);
  if (!killed) throw new Error(`the writer exited by itself: ${err}`);
  const lines = out.split('\n');
  const last = (prefix: string) => {
    const found = lines.filter((l) => l.startsWith(prefix)).at(-1);
    return found === undefined ? 0 : Number(found.split(' ')[1]);
  };
  return { ready: lines[0] ?? '', lastAcked: last('A '), lastStarted: last('? ') };
}

t.test('kill -9 at random moments while saving: the file always loads, with every acknowledged save', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'state.json');
  let expectedStart = 0;
  for (let round = 0; round < 15; round++) {
    const { ready, lastAcked, lastStarted } = await writeAndKill(file, 5 + Math.floor(Math.random() * 60));
    t.equal(ready, `ready ${expectedStart} ${round === 0 ? 'none' : 'file'}`, `round ${round}: the writer started from the last state, read from the file itself`);
    const store = new FileStateStore(file);
    const data = await store.load();
    const counter = data.counter as number;
    if (store.loadReport.source !== 'file' || counter < lastAcked || counter > lastStarted) {
      t.fail(`round ${round}: loaded counter ${counter} from ${store.loadReport.source}; acknowledged ${lastAcked}, started ${lastStarted}; ${store.loadReport.warnings.join(' ')}`);
      return;
    }
    const prev = readJson(`${file}.prev`) as { counter: number };
    // Equal is a legitimate crash state: killed after .prev took a copy of the file and
    // before the new file was renamed in; both are complete and good.
    if (!(prev.counter <= counter)) t.fail(`round ${round}: .prev (${prev.counter}) is newer than the file (${counter})`);
    t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], `round ${round}: no temp file after load`);
    expectedStart = counter;
  }
  t.pass('15 kills: the state file always loaded from itself, never older than the last acknowledged save');
});
