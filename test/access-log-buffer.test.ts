/**
 * The access log's byte encoder and its batching, without sockets. The encoder is checked
 * against oracles: JSON.stringify (and JSON.parse back) for every UTF-16 code unit and for
 * random strings, and the string-built lines of the previous implementation (kept below)
 * byte for byte, in both formats; AccessLog against a recording sink: one write per tick,
 * a write as soon as a batch is large, flush() and a sink swap hand over what is pending.
 */
import t from 'tap';
import { AccessLog, clfTime, combinedLine, jsonLine, type AccessEntry, type AccessSink } from '../src/proxy/access-log.js';
import { LineBuffer, MAX_BYTES_PER_UNIT } from '../src/proxy/line-buffer.js';

// ---- oracles: the string-built lines the encoder replaced ------------------------------------

function oracleJson(e: AccessEntry, time: number, fixed = ',"log":"access"'): string {
  let line = `{"level":30,"time":${time}${fixed},"client":${JSON.stringify(e.client)},"method":${JSON.stringify(e.method)}`;
  if (e.host !== undefined) line += `,"host":${JSON.stringify(e.host)}`;
  line += `,"path":${JSON.stringify(e.path)},"status":${e.status}`;
  if (e.backend !== undefined) line += `,"backend":${JSON.stringify(e.backend)}`;
  if (e.route !== undefined) line += `,"route":"${e.route}"`;
  line += `,"ms":${e.ms},"bytesIn":${e.bytesIn},"bytes":${e.bytesOut}`;
  if (e.userAgent !== undefined) line += `,"ua":${JSON.stringify(e.userAgent)}`;
  if (e.referer !== undefined) line += `,"referer":${JSON.stringify(e.referer)}`;
  if (e.requestId !== undefined) line += `,"requestId":${JSON.stringify(e.requestId)}`;
  if (e.outcome !== undefined) line += `,"outcome":"${e.outcome}"`;
  if (e.websocket) line += ',"websocket":true';
  return `${line}}\n`;
}

function oracleApache(value: string): string {
  if (!/["\\\x00-\x1f\x7f-\uffff]/.test(value)) return value;
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 8) out += '\\b';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f || (c > 0x7f && c <= 0xff)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c > 0xff) for (const b of Buffer.from(ch, 'utf8')) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

function oracleCombined(e: AccessEntry, startedAt: number): string {
  const quoted = (v: string | undefined): string => (v === undefined || v === '' ? '-' : oracleApache(v));
  return (
    `${e.client === '' ? '-' : e.client} - - [${clfTime(startedAt)}] "${oracleApache(e.method)} ${oracleApache(e.path)} HTTP/${e.httpVersion}" ` +
    `${e.status} ${e.bytesOut === 0 ? '-' : e.bytesOut} "${quoted(e.referer)}" "${quoted(e.userAgent)}"\n`
  );
}

/** What a LineBuffer writer produces for `s`, as bytes. */
function encoded(write: (b: LineBuffer, s: string) => void, s: string): Buffer {
  const b = new LineBuffer(16);
  b.reserve(s.length * MAX_BYTES_PER_UNIT + 2);
  write(b, s);
  return Buffer.from(b.buf.subarray(0, b.length));
}

/** A deterministic PRNG (mulberry32), so a failure reproduces from the seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random string mixing ASCII, controls, quotes, latin1, BMP, pairs and lone surrogates. */
function randomString(rand: () => number, max: number): string {
  const pools = [
    () => 0x20 + Math.floor(rand() * 0x5f),
    () => Math.floor(rand() * 0x20),
    () => [0x22, 0x5c, 0x7f][Math.floor(rand() * 3)]!,
    () => 0x80 + Math.floor(rand() * 0x80),
    () => 0x100 + Math.floor(rand() * 0xd700),
    () => 0xd800 + Math.floor(rand() * 0x800),
    () => 0xe000 + Math.floor(rand() * 0x2000),
  ];
  const n = Math.floor(rand() * max);
  let s = '';
  for (let i = 0; i < n; i++) {
    const pick = rand();
    if (pick < 0.05) s += String.fromCodePoint(0x10000 + Math.floor(rand() * 0xfffff));
    else s += String.fromCharCode(pools[pick < 0.6 ? 0 : Math.floor(rand() * pools.length)]!());
  }
  return s;
}

const base: AccessEntry = {
  client: '10.0.0.9',
  method: 'GET',
  host: 'h.example',
  path: '/servoy-service/rest_ws/app/x?q=1',
  httpVersion: '1.1',
  status: 200,
  backend: 'servoy-a',
  route: 'affinity-cookie',
  ms: 12.34,
  bytesIn: 512,
  bytesOut: 4096,
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  referer: 'https://h.example/solutions/crm/index.html',
  requestId: 'Zk3pQ9aB-1a2b',
  outcome: 'ok',
  websocket: false,
};

// ---- the encoder -----------------------------------------------------------------------------

t.test('jsonString: every UTF-16 code unit, alone and inside a long string, as JSON.stringify', async (t) => {
  let bad = 0;
  for (let c = 0; c <= 0xffff; c++) {
    const ch = String.fromCharCode(c);
    for (const s of [ch, `ab${ch}cd`, `${'x'.repeat(30)}${ch}${'y'.repeat(30)}`]) {
      const got = encoded((b, v) => b.jsonString(v), s);
      if (!got.equals(Buffer.from(JSON.stringify(s), 'utf8'))) bad++;
      else if (!(c >= 0xd800 && c <= 0xdfff) && JSON.parse(got.toString('utf8')) !== s) bad++;
    }
  }
  t.equal(bad, 0, 'no code unit encoded differently from JSON.stringify, and each parses back');
});

t.test('jsonString and apacheString: surrogates, pairs and edge cases', async (t) => {
  const cases: [string, string][] = [
    ['empty', ''],
    ['a pair', '\ud83d\ude00'],
    ['a pair in text', 'a\ud83d\ude00b'],
    ['a lone high at the end', 'ab\ud83d'],
    ['a lone low', '\ude00ab'],
    ['two highs', '\ud83d\ud83d\ude00'],
    ['reversed pair', '\ude00\ud83d'],
    ['every short escape', '\b\f\n\r\t"\\/'],
    ['NUL and DEL', '\x00\x7f'],
    ['latin1 bytes', '\u00e9\u00ff\u0080'],
    ['long with a pair', `${'p'.repeat(40)}\ud83d\ude00`],
    ['long with a lone surrogate', `${'p'.repeat(40)}\udfff`],
  ];
  for (const [name, s] of cases) {
    t.same(encoded((b, v) => b.jsonString(v), s), Buffer.from(JSON.stringify(s), 'utf8'), `json: ${name}`);
    t.equal(encoded((b, v) => b.apacheString(v), s).toString('latin1'), oracleApache(s), `apache: ${name}`);
  }
});

t.test('apacheString: every code unit as ap_escape_logitem (the previous implementation)', async (t) => {
  let bad = 0;
  for (let c = 0; c <= 0xffff; c++) {
    const ch = String.fromCharCode(c);
    for (const s of [ch, `${'z'.repeat(30)}${ch}`]) if (encoded((b, v) => b.apacheString(v), s).toString('latin1') !== oracleApache(s)) bad++;
  }
  t.equal(bad, 0);
});

t.test('number: as String(n) for every kind of number', async (t) => {
  const numbers = [0, 1, 9, 10, 99, 100, 12.34, 0.1 + 0.2, 1e-7, 2 ** 31 - 1, 2 ** 31, 999_999, 1_000_000, 1_765_159_000_123, 1_765_159_000_000, 2 ** 53 - 1, 2 ** 53, 1e21, -1, -0.5, NaN, Infinity, -Infinity, 4_294_967_296_000_000];
  for (const n of numbers) {
    const b = new LineBuffer(8);
    b.reserve(32);
    b.number(n);
    t.equal(b.take(), String(n), String(n));
  }
});

t.test('number: hundredths (the ms of a line) as String(n)', async (t) => {
  const rand = prng(11);
  const numbers = [0.01, 0.05, 0.1, 0.29, 0.3, 1.5, 12.34, 99.99, 100.01, 1e-3, 0.015, 21_474_836.46, 21_474_836.47, 21_474_837.5];
  for (let i = 0; i < 20_000; i++) numbers.push(Math.round(rand() * 10 ** Math.floor(rand() * 9) * 100) / 100);
  let wrong = 0;
  for (const n of numbers) {
    const b = new LineBuffer(8);
    b.reserve(32);
    b.number(n);
    if (b.take() !== String(n)) wrong++;
  }
  t.equal(wrong, 0, `${numbers.length} numbers, every one as String(n)`);
});

t.test('text: unescaped UTF-8, non-ASCII included', async (t) => {
  for (const s of ['10.0.0.1', '', 'caf\u00e9', 'x\u20acy', 'a\ud83d\ude00']) t.same(encoded((b, v) => b.text(v), s), Buffer.from(s, 'utf8'), JSON.stringify(s));
});

t.test('reserve grows the buffer and keeps what it holds', async (t) => {
  const b = new LineBuffer(4);
  b.ascii('abcd');
  t.equal(b.free, 0);
  b.reserve(10_000);
  t.ok(b.free >= 10_000);
  b.ascii('e');
  t.equal(b.take(), 'abcde');
  t.equal(b.length, 0, 'take empties it');
});

t.test('lines: byte for byte the previous string-built lines, in both formats (seeded random entries)', async (t) => {
  const rand = prng(0x5eed11);
  const maybe = (s: string): string | undefined => (rand() < 0.2 ? undefined : s);
  let mismatches = 0;
  for (let i = 0; i < 3000; i++) {
    const e: AccessEntry = {
      client: rand() < 0.1 ? '' : randomString(rand, 20),
      method: randomString(rand, 10),
      host: maybe(randomString(rand, 40)),
      path: randomString(rand, 120),
      httpVersion: rand() < 0.5 ? '1.1' : '1.0',
      status: Math.floor(rand() * 600),
      backend: maybe(randomString(rand, 12)),
      route: maybe(['affinity-cookie', 'new-session', 'bad-path'][i % 3]!),
      ms: Math.round(rand() * 1e7) / 100,
      bytesIn: Math.floor(rand() * 1e6),
      bytesOut: rand() < 0.2 ? 0 : Math.floor(rand() * 2 ** 40),
      userAgent: rand() < 0.1 ? '' : maybe(randomString(rand, 200)),
      referer: rand() < 0.1 ? '' : maybe(randomString(rand, 80)),
      requestId: maybe(randomString(rand, 30)),
      outcome: maybe(['ok', 'client-abort', 'timeout'][i % 3]!),
      websocket: rand() < 0.1,
    };
    const time = 1_765_159_000_000 + Math.floor(rand() * 1e9);
    // As bytes: that is what reaches the file (a lone surrogate written unescaped is U+FFFD's bytes either way).
    if (!Buffer.from(jsonLine(e, time, ',"worker":3,"log":"access"')).equals(Buffer.from(oracleJson(e, time, ',"worker":3,"log":"access"')))) mismatches++;
    if (!Buffer.from(combinedLine(e, time)).equals(Buffer.from(oracleCombined(e, time)))) mismatches++;
  }
  t.equal(mismatches, 0);
  t.same(JSON.parse(jsonLine(base, 5)), JSON.parse(oracleJson(base, 5)), 'the common line parses back alike');
});

// ---- batching --------------------------------------------------------------------------------

/** A sink that records each write (a batch of lines). */
function recorder(): AccessSink & { batches: string[] } {
  const batches: string[] = [];
  return { batches, write: (lines: Buffer) => void batches.push(lines.toString()) };
}

t.test('AccessLog: one sink write per tick, whole lines, nothing before the tick ends', async (t) => {
  const sink = recorder();
  const log = new AccessLog({ format: 'json', sink, worker: 2 });
  for (let i = 0; i < 5; i++) log.write({ ...base, path: `/p${i}` });
  t.equal(sink.batches.length, 0, 'held until the end of the tick');
  await new Promise(setImmediate);
  t.equal(sink.batches.length, 1, 'one write for the tick');
  const lines = sink.batches[0]!.split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.same(lines.map((l) => (JSON.parse(l) as { path: string; worker: number }).path), ['/p0', '/p1', '/p2', '/p3', '/p4']);
  t.equal((JSON.parse(lines[0]!) as { worker: number }).worker, 2);
  log.write(base);
  await new Promise(setImmediate);
  t.equal(sink.batches.length, 2, 'the next tick: the next write');
});

t.test('AccessLog: a large batch is written at once, long lines grow the buffer', async (t) => {
  const sink = recorder();
  const log = new AccessLog({ format: 'combined', sink });
  let n = 0;
  while (sink.batches.length === 0) {
    log.write({ ...base, path: `/x${n++}` });
    t.ok(n < 1000, 'bounded');
  }
  t.ok(sink.batches[0]!.length >= 8 * 1024, 'written once 8 KiB gathered');
  const long = `/${'\u00e9'.repeat(100_000)}`;
  log.write({ ...base, path: long });
  log.flush();
  const last = sink.batches.at(-1)!;
  t.ok(last.endsWith('\n') && last.includes('\\xe9'.repeat(1000)), 'a 100,000-character path, escaped whole');
  log.flush();
  t.equal(sink.batches.at(-1), last, 'flush with nothing pending writes nothing');
});

t.test('AccessLog: flush() and a new sink hand what is pending to the old sink first', async (t) => {
  const first = recorder();
  const second = recorder();
  const log = new AccessLog({ format: 'json', sink: first });
  log.write({ ...base, path: '/before' });
  log.sink = second;
  t.equal(first.batches.length, 1, 'pending lines went to the old sink');
  t.match(first.batches[0], '/before');
  t.equal(log.sink, second);
  log.write({ ...base, path: '/after' });
  log.flush();
  t.equal(second.batches.length, 1);
  t.match(second.batches[0], '/after');
  await new Promise(setImmediate);
  t.equal(second.batches.length, 1, 'the scheduled end-of-tick write finds nothing left');
});

t.test('AccessLog in a worker: every batch within one atomic pipe write (4 KiB) and whole lines, in order', async (t) => {
  const sink = recorder();
  const log = new AccessLog({ format: 'json', sink, worker: 1 });
  const paths: string[] = [];
  for (let i = 0; i < 400; i++) {
    const path = `/p${i}/${'x'.repeat((i * 37) % 300)}`;
    paths.push(path);
    log.write({ ...base, path });
  }
  log.flush();
  t.ok(sink.batches.length > 10, `several batches (${sink.batches.length})`);
  t.ok(sink.batches.every((b) => Buffer.byteLength(b) <= 4096 && b.endsWith('\n')), 'each at most 4096 bytes, ending a line');
  const seen = sink.batches.join('').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { path: string }).path);
  t.same(seen, paths, 'every line once, in order');
});
