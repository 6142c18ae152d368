/**
 * Config fuzz (hardening, point 7): random mutations of a valid config never crash
 * `validate` or `start` with anything but a clear error.
 *
 * In-process: 3,000 mutated configs (seeded PRNG; the seed is in the test name, set
 * CONFIG_FUZZ_SEED to replay it, or to "random" for a fresh one), each made from
 * examples/lb.config.full.json or lb.config.json by one to three mutations: delete a key,
 * rename a key with a typo, replace a value with one of another type (numbers negative,
 * huge, fractional, 1e309; strings empty, very long, unicode, control characters,
 * "${UNSET_VAR}", "1e309", "NaN"; null, arrays, objects, booleans), duplicate a backend,
 * empty the backends, nest 10,000 levels deep, truncate the text, insert random bytes.
 * parseConfigText must return a Config or throw a ConfigError whose problems are all one
 * clean `<json-path>: <reason>` line; anything else fails with the mutated input printed.
 * An accepted config must also be one `start` can run (timers that fit a Node.js timer,
 * a learned-sessions table that fits in memory, no "__proto__" key taken as a setting).
 *
 * FUZZ_LONG=1 (`npm run test:fuzz`) runs 100,000 instead, and more through the CLI.
 *
 * Then the real CLI: 12 of the rejected configs and 4 accepted ones (ports 0, state in
 * the test dir) through `servoy-lb validate -c F` and `servoy-lb start -c F` as child
 * processes, 2-4 at a time, none started after a 35 s budget: exit 0 or 1, no stack trace,
 * every stderr line a `servoy-lb:` sentence or a problem line; validate prints exactly the
 * problems parseConfigText found; an accepted start logs "listening" (it is then sent
 * SIGTERM, or after 10 s if it never does) and exits 0 or 1 with nothing on stderr.
 * Needs the build (dist/): `npx tsc -p .` (`npm test` builds first).
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, parseConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { mulberry32 } from './fixtures/hostile-net.js';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'servoy-lb');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'main.js'));

const SEED = seedFromEnv(process.env.CONFIG_FUZZ_SEED);
/** FUZZ_LONG=1 (`npm run test:fuzz`): the long run, kept out of `npm test`. */
const LONG = process.env.FUZZ_LONG === '1';
const CASES = LONG ? 100_000 : 3000;
/** Stop mutating after this long even if CASES is not reached (a slow machine)... */
const BUDGET_MS = LONG ? 600_000 : 15_000;
/** ...but a run that got through fewer than this many cases proves too little. */
const MIN_CASES = 300;
/** Rejected and accepted configs run through the CLI (each costs two Node.js processes). */
const CLI_REJECTED = LONG ? 100 : 12;
const CLI_ACCEPTED = LONG ? 20 : 4;
/** Children at once: the machine's parallelism, 2 to 4 (each is a whole Node.js process). */
const CLI_CONCURRENCY = Math.max(2, Math.min(4, availableParallelism()));
/**
 * `start` of an accepted config is stopped once it logs "listening", or after this long
 * (a balancer loading on a busy machine can take 10 s and more to listen).
 */
const START_MS = 30_000;
/** A validate, or a start of a rejected config, must exit by itself within this long. */
const EXIT_MS = 30_000;
/** No new CLI job starts after this long: on a busy machine a child can take seconds to load. */
const CLI_BUDGET_MS = LONG ? 600_000 : 35_000;

/** The environment the configs are read with; UNSET_VAR is deliberately missing. */
const ENV = { SERVOY_LB_TOKEN: 'fuzz-admin-token', SERVOY_LB_SECRET: 'fuzz-cookie-secret-0123456789' };
const BASE_DIR = '/etc/servoy-lb';

/** The longest delay a Node.js timer keeps; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** What `start` can allocate for affinity.learnedSessions without dying of it. */
const MAX_LEARNED_SESSIONS = 10_000_000;

function seedFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return 0xc0f19;
  if (value === 'random') return Math.floor(Math.random() * 2 ** 32);
  const seed = Number(value);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`CONFIG_FUZZ_SEED must be a non-negative integer or "random", not ${JSON.stringify(value)}`);
  return seed >>> 0;
}


const rnd = mulberry32(SEED);
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
const chance = (p: number): boolean => rnd() < p;

// ---------------------------------------------------------------------------------------
// Mutations

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Base {
  name: string;
  value: JsonObject;
}

const bases: Base[] = [
  { name: 'examples/lb.config.full.json', value: JSON.parse(readFileSync(join(root, 'examples', 'lb.config.full.json'), 'utf8')) as JsonObject },
  { name: 'lb.config.json', value: JSON.parse(readFileSync(join(root, 'lb.config.json'), 'utf8')) as JsonObject },
];

/** Raw JSON text that JSON.stringify cannot produce; spliced in for a placeholder string. */
const RAW_LITERALS = ['1e309', '-1e309', '1e-400', '-0', '123456789012345678901234567890', '0.1e1'];
const DEEP = 10_000;
const RAW_DEEP = ['['.repeat(DEEP) + ']'.repeat(DEEP), '{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP), '['.repeat(DEEP) + '1' + ']'.repeat(DEEP - 1)];
const rawMarker = (n: number): string => `@@fuzz-raw-${n}@@`;

const LONG_TEXT = 'x'.repeat(100_000);
/** The most hostile string values; the other replacements are drawn in replacement(). */
const STRINGS = [
  '',
  ' ',
  '${UNSET_VAR}',
  'pre-${UNSET_VAR}-post',
  '${SERVOY_LB_TOKEN}',
  '${bad-name}',
  '${}',
  '${A\nB}',
  '$${literal}',
  '1e309',
  'NaN',
  'Infinity',
  '-1',
  '0x10',
  '5s',
  ' 5 s ',
  '1.5h',
  '99999999999999999999d',
  '30d',
  'http://127.0.0.1:9',
  'https://servoy.example.com/path',
  'redis://127.0.0.1:6379/0',
  '10.0.0.0/8',
  '::1',
  'üñíçødé',
  '日本語テキスト',
  '😀🎉',
  'line\nbreak',
  'tab\there',
  '\u0000\u0007\u001b[31mred\u001b[0m',
  'a\u2028b\u2029c\u0085d',
  '\ud800',
  '"quoted" \\ back\\slash',
  '</script><script>alert(1)</script>',
  '(',
  '^([a-z]+)(x)$',
  LONG_TEXT,
  'a'.repeat(65),
  '5' + ' '.repeat(100_000) + 'x',
  '1'.repeat(400),
];

/** replacement draws a value, usually of a type other than the one it replaces. */
function replacement(raws: string[]): Json {
  switch (int(14)) {
    case 0:
      return int(70_000);
    case 1:
      return pick([-1, -int(100_000) - 1, -0.5, -(2 ** 31)]);
    case 2:
      return pick([1e15, 2 ** 31, 2 ** 53 + 2, 1e20, 1e300, Number.MAX_SAFE_INTEGER, 10_000_001]);
    case 3:
      return pick([0.5, 1.5, 3.14159, 1e-7]);
    case 4:
    case 5:
    case 6:
      return pick(STRINGS);
    case 7:
      return randomWord();
    case 8:
      return null;
    case 9:
      return pick<Json>([[], [1, 'a', null], [randomWord()], [{}], ['${UNSET_VAR}']]);
    case 10:
      return pick<Json>([{}, { a: 1 }, { id: 'x' }, { file: 'x' }, { '${UNSET_VAR}': 1 }]);
    case 11:
      return chance(0.5);
    case 12:
      raws.push(pick(RAW_LITERALS));
      return rawMarker(raws.length - 1);
    default:
      return pick([0, 1, 2, 100, 65535, 65536, 1024]);
  }
}

function randomWord(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
  return Array.from({ length: 1 + int(12) }, () => pick([...letters])).join('');
}

/** typo turns a key into a near miss, a case change, or a name JavaScript treats specially. */
function typo(key: string): string {
  const i = int(Math.max(1, key.length));
  switch (int(9)) {
    case 0:
      return key.length > 1 ? key.slice(0, i) + key.slice(i + 1) : `${key}x`; // drop a letter
    case 1:
      return key.slice(0, i) + (key[i] ?? 'x') + key.slice(i); // double a letter
    case 2:
      return i + 1 < key.length ? key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2) : `${key}s`; // swap two
    case 3:
      return key.toUpperCase();
    case 4:
      return `${key}s`;
    case 5:
      return ` ${key}`;
    case 6:
      return `${key}\u200b`;
    case 7:
      return pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']);
    default:
      return pick(['', ' ', 'ü', '\n', key + key]);
  }
}

/** setOwn sets a key without the `__proto__` setter (JSON.parse also makes it a plain key). */
function setOwn(object: JsonObject, key: string, value: Json): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

interface Slot {
  parent: JsonObject | Json[];
  key: string | number;
  path: string;
}

/** slots lists every value below the root, with where it sits. */
function slots(node: Json, path = ''): Slot[] {
  const out: Slot[] = [];
  if (Array.isArray(node)) {
    node.forEach((item, index) => out.push({ parent: node, key: index, path: `${path}[${index}]` }, ...slots(item, `${path}[${index}]`)));
  } else if (node !== null && typeof node === 'object') {
    for (const [key, item] of Object.entries(node)) out.push({ parent: node, key, path: `${path}.${key}` }, ...slots(item, `${path}.${key}`));
  }
  return out;
}

function objects(node: Json, path = ''): { object: JsonObject; path: string }[] {
  if (node === null || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((item, i) => objects(item, `${path}[${i}]`));
  return [{ object: node, path: path || '(root)' }, ...Object.entries(node).flatMap(([key, item]) => objects(item, `${path}.${key}`))];
}

function put(slot: Slot, value: Json): void {
  if (Array.isArray(slot.parent)) slot.parent[slot.key as number] = value;
  else setOwn(slot.parent, slot.key as string, value);
}

type Kind = 'delete' | 'rename' | 'replace' | 'duplicate-backend' | 'empty-backends' | 'nest' | 'truncate' | 'insert-bytes';
const KINDS: [Kind, number][] = [
  ['replace', 36],
  ['delete', 14],
  ['rename', 14],
  ['duplicate-backend', 6],
  ['empty-backends', 3],
  ['nest', 4],
  ['truncate', 9],
  ['insert-bytes', 10],
];
const KIND_TOTAL = KINDS.reduce((sum, [, w]) => sum + w, 0);

function drawKind(): Kind {
  let n = int(KIND_TOTAL);
  for (const [kind, weight] of KINDS) {
    if (n < weight) return kind;
    n -= weight;
  }
  return 'replace';
}

/** The byte soup insert-bytes draws from: JSON punctuation, escapes, controls, unicode. */
const SOUP = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u', '/', '/*', '//', '\n', '\r', '\t', '\u0000', '\u0001', '\u001b', '\u000b', '\u000c', '\u007f', '\u2028', '\ufeff', 'ü', '😀', 'e', '-', '.', '0', '9', 'null', 'true', 'NaN', ' '];

interface Case {
  index: number;
  base: string;
  steps: string[];
  kinds: Kind[];
  text: string;
}

/** mutate builds one case: value mutations first, then (sometimes) text mutations. */
function mutate(index: number): Case {
  const base = pick(bases);
  const value = JSON.parse(JSON.stringify(base.value)) as JsonObject;
  const kinds = Array.from({ length: 1 + int(3) }, drawKind).sort((a, b) => Number(isTextKind(a)) - Number(isTextKind(b)));
  const steps: string[] = [];
  const raws: string[] = [];
  let text: string | undefined;
  for (const kind of kinds) {
    if (!isTextKind(kind)) {
      steps.push(mutateValue(kind, value, raws));
      continue;
    }
    text ??= render(value, raws);
    if (kind === 'truncate') {
      const at = int(text.length);
      text = text.slice(0, at);
      steps.push(`truncate at ${at}`);
    } else {
      const at = int(text.length + 1);
      const bytes = Array.from({ length: 1 + int(6) }, () => (chance(0.8) ? pick(SOUP) : String.fromCodePoint(int(0xd800)))).join('');
      text = text.slice(0, at) + bytes + text.slice(at);
      steps.push(`insert ${JSON.stringify(bytes)} at ${at}`);
    }
  }
  // A cut or an insertion may split a surrogate pair; the file written for the CLI would
  // hold U+FFFD there, so both sides get the same well-formed text.
  return { index, base: base.name, steps, kinds, text: wellFormed(text ?? render(value, raws)) };
}

function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

function isTextKind(kind: Kind): boolean {
  return kind === 'truncate' || kind === 'insert-bytes';
}

function render(value: Json, raws: string[]): string {
  let text = JSON.stringify(value, null, chance(0.5) ? 2 : undefined);
  raws.forEach((raw, n) => {
    text = text.replace(JSON.stringify(rawMarker(n)), raw);
  });
  return text;
}

function mutateValue(kind: Kind, root: JsonObject, raws: string[]): string {
  const backends = root.backends;
  switch (kind) {
    case 'delete': {
      const candidates = objects(root).filter((o) => Object.keys(o.object).length > 0);
      if (candidates.length === 0) return 'delete: no key left';
      const { object, path } = pick(candidates);
      const key = pick(Object.keys(object));
      delete object[key];
      return `delete ${path}.${key}`;
    }
    case 'rename': {
      const candidates = objects(root).filter((o) => Object.keys(o.object).length > 0);
      if (candidates.length === 0) return 'rename: no key left';
      const { object, path } = pick(candidates);
      const key = pick(Object.keys(object));
      const renamed = typo(key);
      const entries = Object.entries(object);
      for (const k of Object.keys(object)) delete object[k];
      for (const [k, v] of entries) setOwn(object, k === key ? renamed : k, v);
      return `rename ${path}.${key} to ${JSON.stringify(renamed)}`;
    }
    case 'replace': {
      const all = slots(root);
      if (all.length === 0) return 'replace: no value left';
      const slot = pick(all);
      const value = replacement(raws);
      put(slot, value);
      return `replace ${slot.path} with ${describeValue(value, raws)}`;
    }
    case 'duplicate-backend': {
      if (!Array.isArray(backends) || backends.length === 0) return 'duplicate a backend: there is none';
      const from = int(backends.length);
      const copy = JSON.parse(JSON.stringify(backends[from])) as Json;
      const distinct = chance(0.5) && copy !== null && typeof copy === 'object' && !Array.isArray(copy);
      if (distinct) {
        setOwn(copy, 'id', `copy-${int(1000)}`);
        setOwn(copy, 'url', `http://127.0.0.1:${20_000 + int(10_000)}`);
        delete copy.route;
      }
      backends.splice(int(backends.length + 1), 0, copy);
      return `duplicate backends[${from}]${distinct ? ' (new id and url)' : ''}`;
    }
    case 'empty-backends':
      root.backends = [];
      return 'empty backends';
    case 'nest': {
      const slot = chance(0.2) ? undefined : pick(slots(root));
      raws.push(pick(RAW_DEEP));
      const marker = rawMarker(raws.length - 1);
      if (slot === undefined) {
        setOwn(root, pick(['deep', 'backends', 'listen']), marker);
        return `nest ${DEEP} levels at the top`;
      }
      put(slot, marker);
      return `nest ${DEEP} levels at ${slot.path}`;
    }
    default:
      throw new Error(`not a value mutation: ${kind}`);
  }
}

function describeValue(value: Json, raws: string[]): string {
  if (typeof value === 'string') {
    const raw = /^@@fuzz-raw-(\d+)@@$/.exec(value);
    if (raw) return `raw ${raws[Number(raw[1])]!.slice(0, 40)}`;
    if (value.length > 60) return `a ${value.length}-character string starting ${JSON.stringify(value.slice(0, 20))}`;
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------
// Verdicts

type Outcome = { ok: true; config: Config } | { ok: false; problems: string[] };

const PROBLEM_LINE = /^\S.*: .+/;
const UNPRINTABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/;
const STACK_FRAME = /(^|\s)at (?:\S+ \()?(?:file|node):|\bat .+:\d+:\d+\)?$|^\s+at /;

/** problemFault says what is wrong with one problem line, or undefined when it is a clean one. */
function problemFault(line: unknown): string | undefined {
  if (typeof line !== 'string') return `is a ${typeof line}, not a string`;
  if (line.trim() === '') return 'is empty';
  if (UNPRINTABLE.test(line)) return 'contains a line break or a control character';
  if (!PROBLEM_LINE.test(line)) return 'is not "<json-path>: <reason>"';
  if (STACK_FRAME.test(line)) return 'contains a stack frame';
  if (line.includes('undefined')) return 'says "undefined"';
  if (line.includes('[object Object]')) return 'says "[object Object]"';
  if (/\bexpected an? (\w+), got \1\b/.test(line)) return 'says it expected what it got';
  return undefined;
}

/** configFault says why an accepted config is not one `start` can run, or undefined. */
function configFault(config: Config, text: string): string | undefined {
  if (/"__proto__"\s*:/.test(text)) return 'a "__proto__" key was accepted (it is no setting)';
  const timers: [string, number][] = [
    ['affinity.sessionIdle', config.affinity.sessionIdle],
    ['affinity.maintenanceBackoff', config.affinity.maintenanceBackoff],
    ['healthCheck.interval', config.healthCheck.interval],
    ['healthCheck.timeout', config.healthCheck.timeout],
    ['outlier.ejectFor', config.outlier.ejectFor],
    ['drain.maxWait', config.drain.maxWait],
    ...Object.entries(config.timeouts).map(([key, ms]): [string, number] => [`timeouts.${key}`, ms]),
  ];
  for (const [path, ms] of timers) {
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMER_MS) return `${path} is ${ms} ms: not a delay a Node.js timer can keep`;
  }
  const ttl = config.affinity.cookie.ttl;
  if (ttl !== undefined && !Number.isSafeInteger(ttl)) return `affinity.cookie.ttl is ${ttl}: Max-Age would not be an exact integer`;
  if (config.affinity.learnedSessions > MAX_LEARNED_SESSIONS) return `affinity.learnedSessions is ${config.affinity.learnedSessions}: start cannot allocate that table`;
  return undefined;
}

class Fault extends Error {}

/** judge parses one text and throws a Fault when the outcome breaks the rules. */
function judge(text: string): Outcome {
  let outcome: Outcome;
  try {
    outcome = { ok: true, config: parseConfigText(text, { env: ENV, baseDir: BASE_DIR }) };
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
      throw new Fault(`threw ${err instanceof Error ? err.name : typeof err} instead of a ConfigError: ${stack.split('\n').slice(0, 6).join('\n')}`);
    }
    if (!Array.isArray(err.problems) || err.problems.length === 0) throw new Fault('ConfigError without problems');
    const bad = err.problems.map((line) => [line, problemFault(line)] as const).filter(([, fault]) => fault !== undefined);
    if (bad.length > 0) throw new Fault(bad.map(([line, fault]) => `problem ${fault}: ${JSON.stringify(line).slice(0, 400)}`).join('\n'));
    return { ok: false, problems: err.problems };
  }
  const fault = configFault(outcome.config, text);
  if (fault !== undefined) throw new Fault(`accepted, but ${fault}`);
  return outcome;
}

/** excerpt keeps a printed input readable: its ends, with the length in between. */
function excerpt(text: string, max = 3000): string {
  const shown = text.length <= max ? text : `${text.slice(0, max - 800)}\n... (${text.length} characters in all) ...\n${text.slice(-600)}`;
  return JSON.stringify(shown);
}

function report(c: Case, fault: string): string {
  return [
    `case ${c.index} (seed ${SEED}; replay with CONFIG_FUZZ_SEED=${SEED}) from ${c.base}`,
    `mutations: ${c.steps.join('; ')}`,
    fault,
    `input (JSON string of the text): ${excerpt(c.text)}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// The tests

t.test('hostile configs that once crashed or misled (regressions)', async (t) => {
  const full = JSON.stringify(bases[0]!.value);
  const minimal = '{"backends":[{"id":"a","url":"http://127.0.0.1:8091"}]}';
  const withKey = (key: string, raw: string): string => minimal.replace('{', `{"${key}":${raw},`);
  const cases: { desc: string; text: string; want?: RegExp }[] = [
    { desc: '10,000 levels of arrays', text: RAW_DEEP[0]!, want: /^\(file\): invalid JSON at line 1, column 65: nested more than 64 levels deep$/ },
    { desc: '10,000 levels inside a value', text: withKey('listen', '{"host":' + RAW_DEEP[1]! + '}'), want: /nested more than 64 levels deep/ },
    { desc: '10,000 unclosed brackets (no position from JSON.parse)', text: '['.repeat(DEEP), want: /nested more than 64 levels deep/ },
    { desc: 'a truncated deep config', text: full.slice(0, 40) + '['.repeat(DEEP) },
    { desc: '"__proto__" smuggling a port', text: withKey('listen', '{"__proto__":{"port":1}}'), want: /^listen\.__proto__: unknown key/ },
    { desc: '"__proto__" at the top', text: withKey('__proto__', '{"listen":{"port":1}}'), want: /^__proto__: unknown key/ },
    { desc: '"__proto__" in errorPages', text: withKey('errorPages', '{"__proto__":"x.html"}'), want: /^errorPages\.__proto__: unknown key/ },
    { desc: '"__proto__" in partitions', text: withKey('affinity', '{"partitions":{"__proto__":"a"}}'), want: /^affinity\.partitions\.__proto__: unknown key/ },
    { desc: '1e309 as a port', text: withKey('listen', '{"port":1e309}'), want: /^listen\.port: expected a number, got a number too large to represent$/ },
    { desc: 'a newline in an env reference', text: withKey('admin', '{"token":"${A\\nB}"}'), want: /^admin\.token: "\$\{A\\nB\}" is not a valid environment variable reference/ },
    { desc: 'a newline in a pattern', text: withKey('affinity', '{"partitionKey":{"from":"host","pattern":"(\\n"}}'), want: /^affinity\.partitionKey\.pattern: not a valid regular expression: .*\\n/ },
    { desc: 'a form feed where a value belongs', text: withKey('listen', '\f'), want: /unexpected token '\\f'/ },
    { desc: 'a health-check interval beyond a timer', text: withKey('healthCheck', '{"interval":"30d"}'), want: /^healthCheck\.interval: must be at most 2147483647 ms/ },
    { desc: 'an integer timeout beyond a timer', text: withKey('timeouts', '{"websocketIdle":1000000000000000}'), want: /^timeouts\.websocketIdle: must be at most 2147483647 ms/ },
    { desc: 'a cookie ttl beyond exact milliseconds', text: withKey('affinity', '{"cookie":{"ttl":"99999999999999999999d"}}'), want: /^affinity\.cookie\.ttl: must be at most/ },
    { desc: 'a learned-sessions table too big to allocate', text: withKey('affinity', '{"learnedSessions":1000000000000000}'), want: /^affinity\.learnedSessions: must be at most 10000000/ },
    // 300,000 blanks: a backtracking pattern takes minutes on them, a linear one milliseconds.
    { desc: 'a duration padded with 300,000 blanks (the pattern backtracked for seconds)', text: withKey('drain', JSON.stringify({ maxWait: '5' + ' '.repeat(300_000) + 'x' })), want: /^drain\.maxWait: expected a duration/ },
  ];
  for (const c of cases) {
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = judge(c.text);
    } catch (err) {
      t.fail(`${c.desc}: ${(err as Error).message}\ninput: ${excerpt(c.text, 600)}`);
      continue;
    }
    const ms = performance.now() - started;
    // Generous (a busy machine): what these cases guard against takes minutes.
    t.ok(ms < 5000, `${c.desc}: answered in ${Math.round(ms)} ms`);
    if (c.want === undefined) t.notOk(outcome.ok, `${c.desc}: rejected`);
    else if (outcome.ok) t.fail(`${c.desc}: accepted`);
    else t.ok(outcome.problems.some((line) => c.want!.test(line)), `${c.desc}: ${outcome.problems.join(' | ').slice(0, 300)}`);
  }
});

interface Judged extends Case {
  outcome: Outcome;
}

const judged: Judged[] = [];

t.test(`${CASES} random mutations of the example configs (seed ${SEED}; replay with CONFIG_FUZZ_SEED=${SEED})`, async (t) => {
  for (const base of bases) {
    const outcome = judge(JSON.stringify(base.value));
    t.ok(outcome.ok, `${base.name} itself is valid`);
  }
  const started = performance.now();
  const counts = { accepted: 0, rejected: 0 };
  let faults = 0;
  for (let i = 0; i < CASES && performance.now() - started < BUDGET_MS; i++) {
    const c = mutate(i);
    try {
      const outcome = judge(c.text);
      counts[outcome.ok ? 'accepted' : 'rejected']++;
      judged.push({ ...c, outcome });
    } catch (err) {
      if (!(err instanceof Fault)) throw err;
      faults++;
      t.fail(report(c, err.message));
      if (faults >= 10) {
        t.fail('stopping after 10 faults');
        break;
      }
    }
  }
  const ran = counts.accepted + counts.rejected + faults;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  t.ok(ran >= Math.min(CASES, MIN_CASES) || faults > 0, `${ran} cases in ${seconds} s: ${counts.rejected} rejected with clean problems, ${counts.accepted} accepted and runnable`);
  t.ok(counts.rejected > 0 && counts.accepted > 0, 'the mutations produce both valid and invalid configs');
});

// ---------------------------------------------------------------------------------------
// The CLI

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** start logged "listening" (and was then sent SIGTERM). */
  listened: boolean;
  /** start was sent SIGTERM because it had not logged "listening" within START_MS. */
  stopped: boolean;
  /** The child did not exit in time (see runCli) and was killed. */
  hung: boolean;
  ms: number;
}

const childEnv: NodeJS.ProcessEnv = { ...process.env, ...ENV };
delete childEnv.UNSET_VAR;
// tap's coverage hook (@tapjs/processinfo in NODE_OPTIONS) costs each child about a second;
// these children are here for their exit codes and stderr, so they run without it.
childEnv.NODE_OPTIONS = (process.env.NODE_OPTIONS ?? '')
  .split(/\s+/)
  .filter((option) => option !== '' && !option.includes('@tapjs/processinfo'))
  .join(' ');

/** Children still running; killed when the test ends, whatever way it ends. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

/**
 * runCli runs `node bin/servoy-lb ...args`. A `start` that is expected to run gets SIGTERM
 * once it logs "listening" (or after START_MS) and must exit within 5 s of it; everything
 * else must exit by itself within EXIT_MS. A child that does not is killed and reported as hung.
 */
function runCli(args: string[], cwd: string, expectRunning: boolean): Promise<Run> {
  const began = performance.now();
  return new Promise((done) => {
    const proc = spawn(process.execPath, [bin, ...args], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    let listened = false;
    let stopped = false;
    let hung = false;
    let killer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      hung = true;
      proc.kill('SIGKILL');
    };
    const stop = (): void => {
      if (killer !== undefined) return;
      proc.kill('SIGTERM');
      killer = setTimeout(kill, 5000);
    };
    const deadline = expectRunning
      ? setTimeout(() => {
          stopped = true;
          stop();
        }, START_MS)
      : setTimeout(kill, EXIT_MS);
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (expectRunning && !listened && /"msg":"[^"]*listening/.test(stdout)) {
        listened = true;
        stop();
      }
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    proc.on('close', (code, signal) => {
      live.delete(proc);
      clearTimeout(deadline);
      clearTimeout(killer);
      done({ code, signal, stdout, stderr, listened, stopped, hung, ms: performance.now() - began });
    });
  });
}

/**
 * stderrFaults lists what is wrong with a command's stderr. validate may only print problem
 * lines. start prints one `servoy-lb: ...` sentence, followed by the problem lines only
 * when it is the `invalid config file F (N problems)` summary. Stack frames, Node.js
 * warnings and `servoy-lb: unexpected error` (an exception nobody handled) are faults.
 */
function stderrFaults(stderr: string, command: 'validate' | 'start'): string[] {
  const out: string[] = [];
  const lines = stderr.split('\n').filter((line) => line !== '');
  for (const line of lines) {
    if (/^\s+at /.test(line)) out.push(`stack frame: ${JSON.stringify(line)}`);
    if (/^\(node:\d+\)/.test(line)) out.push(`Node.js warning: ${JSON.stringify(line.slice(0, 300))}`);
  }
  let problems = lines;
  if (command === 'start' && lines.length > 0) {
    const [first, ...rest] = lines as [string, ...string[]];
    if (!first.startsWith('servoy-lb: ')) out.push(`first line is not "servoy-lb: ...": ${JSON.stringify(first.slice(0, 300))}`);
    if (/unexpected error/.test(first)) out.push(`unexpected error (an unhandled exception): ${JSON.stringify(first.slice(0, 300))}`);
    if (/\bundefined\b|\[object Object\]/.test(first)) out.push(`says undefined or [object Object]: ${JSON.stringify(first.slice(0, 300))}`);
    const summary = /^servoy-lb: invalid config file .+ \((\d+) problems?\)$/.exec(first);
    if (rest.length > 0 && (summary === null || Number(summary[1]) !== rest.length)) out.push(`${rest.length} more lines after ${JSON.stringify(first.slice(0, 200))}`);
    problems = rest;
  }
  for (const line of problems) {
    const fault = problemFault(line);
    if (fault !== undefined) out.push(`not a problem line (${fault}): ${JSON.stringify(line.slice(0, 300))}`);
  }
  return out;
}

/** pickSpread takes up to n items, spread over the first mutation kinds so that every kind shows up. */
function pickSpread<T extends Case>(items: T[], n: number): T[] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = item.kinds.join('+');
    groups.set(key, [...(groups.get(key) ?? []), item]);
  }
  const queues = [...groups.values()];
  const out: T[] = [];
  while (out.length < n && queues.some((q) => q.length > 0)) {
    for (const queue of queues) {
      if (out.length >= n) break;
      const item = queue.splice(int(queue.length), 1)[0];
      if (item !== undefined) out.push(item);
    }
  }
  return out;
}

/**
 * runnable rewrites an accepted config so that `start` can run next to other tests: ports
 * 0, state in the test dir, no TLS (the example's certificate files do not exist).
 */
function runnable(text: string, dir: string, index: number): string | undefined {
  const value = JSON.parse(text) as JsonObject;
  const object = (v: Json | undefined): JsonObject => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {});
  const listen = object(value.listen);
  delete listen.tls;
  value.listen = { ...listen, port: 0 };
  value.admin = { ...object(value.admin), port: 0 };
  value.state = { file: join(dir, `state-${index}.json`) };
  const rewritten = JSON.stringify(value, null, 2);
  try {
    return judge(rewritten).ok ? rewritten : undefined;
  } catch {
    return undefined;
  }
}

t.test('the CLI on mutated configs: clear errors, no stack traces', { skip: built ? false : 'not built: run `npx tsc -p .` first (npm test does)' }, async (t) => {
  t.teardown(() => {
    for (const proc of live) proc.kill('SIGKILL');
  });
  const dir = t.testdir({
    pages: { 'unavailable.html': '<h1>unavailable</h1>', 'maintenance.html': '<h1>maintenance</h1>' },
  });
  const rejected = pickSpread(judged.filter((c) => !c.outcome.ok), CLI_REJECTED);
  const accepted: { c: Case; text: string }[] = [];
  for (const c of pickSpread(judged.filter((j) => j.outcome.ok), CLI_ACCEPTED * 4)) {
    if (accepted.length >= CLI_ACCEPTED) break;
    const text = runnable(c.text, dir, c.index);
    if (text !== undefined) accepted.push({ c, text });
  }
  // Never fewer than CLI_ACCEPTED runnable configs: top up with the unmutated examples.
  for (let i = 0; accepted.length < CLI_ACCEPTED; i++) {
    const base = bases[i % bases.length]!;
    const text = runnable(JSON.stringify(base.value), dir, -1 - i)!;
    accepted.push({ c: { index: -1 - i, base: base.name, steps: ['none'], kinds: [], text }, text });
  }
  t.equal(rejected.length, CLI_REJECTED, `${rejected.length} rejected configs to run`);

  interface Job {
    c: Case;
    text: string;
    problems: string[] | undefined;
  }
  // One accepted config after every five rejected ones, so that a run cut short by the
  // time budget still has both kinds.
  const jobs: Job[] = rejected.map((c) => ({ c, text: c.text, problems: (c.outcome as { problems: string[] }).problems }));
  accepted.forEach(({ c, text }, i) => jobs.splice(Math.min(jobs.length, i * 6), 0, { c, text, problems: undefined }));
  await Promise.all(jobs.map(({ text }, n) => writeFile(join(dir, `case-${n}.json`), text)));

  const started = performance.now();
  let listened = 0;
  const runJob = async (job: Job, n: number): Promise<void> => {
    const file = join(dir, `case-${n}.json`);
    const what = job.problems === undefined ? 'accepted' : 'rejected';
    const context = (run: Run, command: string): string =>
      `${command} on ${what} case ${job.c.index} (seed ${SEED}) from ${job.c.base}; mutations: ${job.c.steps.join('; ')}\n` +
      `exit ${run.code ?? run.signal}${run.hung ? ' (hung, killed)' : ''} after ${Math.round(run.ms)} ms\nstderr: ${JSON.stringify(run.stderr.slice(0, 1500))}\ninput: ${excerpt(job.text, 1500)}`;

    const validate = await runCli(['validate', '-c', file], dir, false);
    const validateFaults = stderrFaults(validate.stderr, 'validate');
    if (validate.hung) validateFaults.push(`did not exit within ${EXIT_MS} ms`);
    if (job.problems === undefined) {
      if (validate.code !== 0 || validate.stdout !== 'config OK\n') validateFaults.push('an accepted config must give exit 0 and "config OK"');
    } else {
      if (validate.code !== 1) validateFaults.push(`exit ${validate.code ?? validate.signal}, not 1`);
      const lines = validate.stderr.split('\n').filter((line) => line !== '');
      if (JSON.stringify(lines) !== JSON.stringify(job.problems)) validateFaults.push(`stderr lines differ from parseConfigText's problems ${JSON.stringify(job.problems).slice(0, 600)}`);
    }
    if (validateFaults.length > 0) t.fail(`validate: ${validateFaults.join('; ')}\n${context(validate, 'validate')}`);
    else t.pass(`validate, ${what} case ${job.c.index}: exit ${validate.code}`);

    const start = await runCli(['start', '-c', file], dir, job.problems === undefined);
    const startFaults = stderrFaults(start.stderr, 'start');
    // A start that was still loading when START_MS ran out dies of the SIGTERM itself: slow, not wrong.
    const killedByUs = start.stopped && !start.listened && start.signal === 'SIGTERM';
    if (start.hung) startFaults.push(job.problems === undefined ? 'did not exit within 5 s of SIGTERM' : `did not exit within ${EXIT_MS} ms`);
    else if (start.code !== 0 && start.code !== 1 && !killedByUs) startFaults.push(`exit ${start.code ?? start.signal}, not 0 or 1`);
    if (job.problems !== undefined) {
      if (start.code !== 1) startFaults.push('a rejected config must give exit 1');
      if (!start.stderr.startsWith('servoy-lb: ')) startFaults.push('stderr must start with "servoy-lb: "');
      if (/"msg":"[^"]*listening/.test(start.stdout)) startFaults.push('listened with a rejected config');
    } else if (start.listened && start.stderr !== '') {
      startFaults.push('a running balancer wrote to stderr');
    } else if (!start.listened && start.code === 1 && start.stderr === '') {
      startFaults.push('a failed start must say why on stderr ("servoy-lb: ...")');
    }
    if (start.listened) listened++;
    if (startFaults.length > 0) t.fail(`start: ${startFaults.join('; ')}\n${context(start, 'start')}`);
    else {
      const how = start.listened ? `listened, exit ${start.code} on SIGTERM` : killedByUs ? `not listening after ${START_MS} ms, stopped` : `exit ${start.code}`;
      t.pass(`start, ${what} case ${job.c.index}: ${how}${start.code === 1 ? ` (${start.stderr.split('\n')[0]!.slice(0, 120)})` : ''} in ${Math.round(start.ms)} ms`);
    }
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && performance.now() - started < CLI_BUDGET_MS) {
      const n = next++;
      await runJob(jobs[n]!, n);
    }
  };
  await Promise.all(Array.from({ length: CLI_CONCURRENCY }, worker));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (next < jobs.length) t.comment(`time budget spent: ${jobs.length - next} of ${jobs.length} configs not run (a busy machine)`);
  t.ok(next >= Math.min(jobs.length, 2 * CLI_CONCURRENCY), `${next} configs, ${next * 2} CLI runs in ${seconds} s`);
  t.ok(listened > 0, `start listened with ${listened} of the accepted configs it ran`);
});
