/**
 * Differential fuzz of the request-head codec (src/proxy/codec/) against Node's own
 * HTTP parser (llhttp, strict mode, as node:http runs it). Cases are the corpus in
 * test/fixtures/codec-corpus/ (valid requests, the smuggling classes, the classes of
 * PortSwigger's and HTTP Garden's published research in published.json, the regressions
 * this fuzz found) plus seeded mutations of it (byte flips; insertions of CR, LF, SP,
 * HTAB, NUL, `:` and `,`; header-line duplication; case changes; truncation), generated
 * requests, and requests combined from the published classes (fixtures/smuggling-classes.ts),
 * as they are and mutated. The test FAILS when:
 *   - we accept a request (head, and the body framing) that Node rejects;
 *   - both accept and Node sees another method, target, header list, upgrade or
 *     keep-alive, or another body (its bytes, or where it ends).
 * Rejecting what Node accepts is allowed: the codec is stricter by design.
 *
 * Node's framing comes from its internal parser binding, `HTTPParser` of node:_http_common
 * (an internal, not a public API: reachable in Node 24, and the test skips with a clear
 * message when it is not). Where a body ends per Node: the bytes up to our end minus one
 * must not complete the message, the last byte must. No sockets: a unit file.
 *
 * 20,000 cases in `npm test`; CODEC_FUZZ_LONG=1 runs 200,000 (the issue asks for at least
 * 100,000); CODEC_FUZZ_CASES=<n> runs n; CODEC_FUZZ_SEED=<n> picks
 * another seed; CODEC_FUZZ_DUMP=<file> writes the failures there as JSON. A failing case is printed as JSON: add it to codec-corpus/regressions.json.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';
import { CHUNK_DATA, CHUNK_END, CHUNK_ERROR, ChunkedDecoder } from '../src/proxy/codec/chunked.js';
import { parseRequestHead } from '../src/proxy/codec/request-head.js';
import { mulberry32 } from './fixtures/hostile-net.js';
import { generateClass } from './fixtures/smuggling-classes.js';

const LONG = process.env.CODEC_FUZZ_LONG === '1';
const CASES = process.env.CODEC_FUZZ_CASES !== undefined ? Number(process.env.CODEC_FUZZ_CASES) : LONG ? 200_000 : 20_000;
const SEED = Number(process.env.CODEC_FUZZ_SEED ?? 0xc0dec);
const MAX_HEAD = 16 * 1024;

interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  [k: number]: unknown;
}
interface HTTPParserCtor {
  new (): NodeParser;
  REQUEST: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

let HTTPParser: HTTPParserCtor | undefined;
let methods: string[] = [];
try {
  const common = createRequire(import.meta.url)('_http_common') as { HTTPParser?: HTTPParserCtor; methods?: string[] };
  if (typeof common.HTTPParser === 'function' && Array.isArray(common.methods)) {
    HTTPParser = common.HTTPParser;
    methods = common.methods;
  }
} catch {
  HTTPParser = undefined;
}

/** What Node's parser saw of the first message. */
interface NodeView {
  error?: string;
  method?: string;
  url: string;
  headers: string[];
  headersDone: boolean;
  upgrade?: boolean;
  keepAlive?: boolean;
  body: Buffer[];
  complete: boolean;
}

function nodeParser(view: NodeView): NodeParser {
  const P = HTTPParser!;
  const p = new P();
  p.initialize(P.REQUEST, {}, 1 << 20, 0);
  p[P.kOnHeaders] = (headers: string[], url: string) => {
    if (view.headersDone) return; // trailers: checked by both, kept by neither here
    view.headers.push(...headers);
    view.url += url;
  };
  p[P.kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
    if (view.headersDone) return 0;
    view.headersDone = true;
    if (headers) view.headers.push(...headers);
    if (url) view.url += url;
    view.method = methods[method];
    view.upgrade = upgrade;
    view.keepAlive = keepAlive;
    return 0;
  };
  p[P.kOnBody] = (b: Buffer) => {
    if (!view.complete) view.body.push(Buffer.from(b));
  };
  p[P.kOnMessageComplete] = () => {
    view.complete = true;
  };
  return p;
}

function feed(p: NodeParser, view: NodeView, b: Buffer): void {
  if (view.error !== undefined || b.length === 0) return;
  const r = p.execute(b);
  if (r instanceof Error) view.error = (r as Error & { code?: string }).code ?? r.message;
}

/** Whether Node's parser refuses somewhere in `bytes` (fed whole): for the statistics. */
function nodeRefuses(bytes: Buffer): boolean {
  const view: NodeView = { url: '', headers: [], headersDone: false, body: [], complete: false };
  feed(nodeParser(view), view, bytes);
  return view.error !== undefined;
}

/** Why our verdict and Node's disagree, or undefined. */
export function compare(bytes: Buffer): string | undefined {
  const ours = parseRequestHead(bytes, 0, MAX_HEAD);
  if (ours.kind !== 'head') return undefined;
  // Where the body ends per us (undefined: more bytes needed), and its bytes.
  let end: number | undefined;
  const body: Buffer[] = [];
  if (ours.upgrade !== undefined) end = ours.headEnd;
  else if (ours.body.kind === 'none') end = ours.headEnd;
  else if (ours.body.kind === 'length') {
    const e = ours.headEnd + ours.body.length;
    if (e <= bytes.length) end = e;
    body.push(bytes.subarray(ours.headEnd, Math.min(e, bytes.length)));
  } else {
    const d = new ChunkedDecoder();
    let p = ours.headEnd;
    let ev: number;
    while ((ev = d.step(bytes, p, bytes.length)) === CHUNK_DATA) {
      body.push(bytes.subarray(d.dataStart, d.dataEnd));
      p = d.pos;
    }
    if (ev === CHUNK_ERROR) return undefined; // we refuse the body
    if (ev === CHUNK_END) end = d.pos;
  }
  const view: NodeView = { url: '', headers: [], headersDone: false, body: [], complete: false };
  const p = nodeParser(view);
  if (end === undefined) {
    feed(p, view, bytes);
    if (view.error) return `we accept (body incomplete), Node rejects: ${view.error}`;
    if (view.complete) return 'Node completes the message, we want more body bytes';
  } else {
    feed(p, view, bytes.subarray(0, end - 1));
    if (view.error) return `we accept, Node rejects: ${view.error}`;
    if (view.complete && !view.upgrade) return `Node ends the message before our end ${end}`;
    feed(p, view, bytes.subarray(end - 1, end));
    if (view.error) return `we accept, Node rejects: ${view.error}`;
    if (!view.upgrade && !view.complete) return `Node does not end the message at our end ${end}`;
  }
  if (!view.headersDone) return 'Node did not finish the head';
  if (view.method !== ours.method) return `method: ours ${ours.method}, Node ${view.method}`;
  if (view.url !== ours.target) return `target: ours ${JSON.stringify(ours.target)}, Node ${JSON.stringify(view.url)}`;
  if (JSON.stringify(view.headers) !== JSON.stringify(ours.headers)) {
    return `headers: ours ${JSON.stringify(ours.headers)}, Node ${JSON.stringify(view.headers)}`;
  }
  if (view.upgrade !== (ours.upgrade !== undefined)) return `upgrade: ours ${ours.upgrade !== undefined}, Node ${view.upgrade}`;
  // Known, allowed: `Connection: close` with `keep-alive` in HTTP/1.0: we close, Node keeps it open.
  const closeListed = ours.headers.some((v, i) => i % 2 === 1 && /^connection$/i.test(ours.headers[i - 1]!) && /(^|,)\s*close\s*(,|$)/i.test(v));
  if (view.keepAlive !== ours.keepAlive && !(closeListed && !ours.keepAlive)) return `keep-alive: ours ${ours.keepAlive}, Node ${view.keepAlive}`;
  if (!view.upgrade && !Buffer.concat(view.body).equals(Buffer.concat(body))) return 'body bytes differ';
  return undefined;
}

interface CorpusEntry {
  name: string;
  request: string;
}
const corpusDir = new URL('./fixtures/codec-corpus/', import.meta.url);
const corpus: CorpusEntry[] = ['valid.json', 'smuggling.json', 'published.json', 'regressions.json'].flatMap(
  (f) => JSON.parse(readFileSync(new URL(f, corpusDir), 'latin1')) as CorpusEntry[],
);

const SPECIAL = [0x0d, 0x0a, 0x20, 0x09, 0x00, 0x3a, 0x2c, 0x3b, 0x22, 0x0b, 0x7f, 0xff, 0x30, 0x2b, 0x2d];
const NAMES = ['Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'Cookie', 'X-A'];
const VALUES = ['chunked', ' chunked', 'Chunked', 'identity', 'gzip, chunked', '5', '05', '+5', '5,5', '', 'close', 'keep-alive', 'upgrade', 'websocket', '100-continue', 'lb.test', 'a\tb', 'caf\xe9'];

function mutate(rand: () => number, src: Buffer): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  let b = src;
  const rounds = 1 + pick(3);
  for (let r = 0; r < rounds && b.length > 0; r++) {
    const at = pick(b.length + 1);
    switch (pick(7)) {
      case 0: { // byte flip
        b = Buffer.from(b);
        if (at < b.length) b[at] = rand() < 0.5 ? SPECIAL[pick(SPECIAL.length)]! : pick(256);
        break;
      }
      case 1: // insertion of a special byte
        b = Buffer.concat([b.subarray(0, at), Buffer.from([SPECIAL[pick(7)]!]), b.subarray(at)]);
        break;
      case 2: { // header-line duplication
        const s = b.toString('latin1');
        const lines = s.split('\r\n');
        const i = 1 + pick(Math.max(1, lines.length - 1));
        if (i < lines.length && lines[i] !== '') lines.splice(i, 0, lines[i]!);
        b = Buffer.from(lines.join('\r\n'), 'latin1');
        break;
      }
      case 3: { // case change of a run
        b = Buffer.from(b);
        const n = 1 + pick(12);
        for (let i = at; i < Math.min(b.length, at + n); i++) {
          const c = b[i]!;
          if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) b[i] = c ^ 0x20;
        }
        break;
      }
      case 4: // truncation
        b = b.subarray(0, at);
        break;
      case 5: // deletion of a byte
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        break;
      default: { // an extra header line after the request line
        const s = b.toString('latin1');
        const i = s.indexOf('\r\n');
        if (i < 0) break;
        const line = `${NAMES[pick(NAMES.length)]}:${rand() < 0.7 ? ' ' : ''}${VALUES[pick(VALUES.length)]}\r\n`;
        b = Buffer.from(s.slice(0, i + 2) + line + s.slice(i + 2), 'latin1');
      }
    }
  }
  return b;
}

/** A fresh request: random method, target, headers and body framing. */
function generate(rand: () => number): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  const method = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH'][pick(7)]!;
  const minor = rand() < 0.15 ? 0 : 1;
  let head = `${method} /${'abc/%20?=&;~'.slice(pick(6), 6 + pick(6))} HTTP/1.${minor}\r\n`;
  if (minor === 1 || rand() < 0.3) head += 'Host: lb.test\r\n';
  const n = pick(6);
  for (let i = 0; i < n; i++) head += `${NAMES[pick(NAMES.length)]}: ${VALUES[pick(VALUES.length)]}\r\n`;
  const kind = pick(3);
  let body = '';
  if (kind === 1) {
    const len = pick(20);
    head += `Content-Length: ${len}\r\n`;
    body = 'x'.repeat(len);
  } else if (kind === 2 && minor === 1) {
    head += 'Transfer-Encoding: chunked\r\n';
    const chunks = pick(3);
    for (let i = 0; i < chunks; i++) {
      const len = 1 + pick(20);
      const ext = rand() < 0.3 ? (rand() < 0.5 ? ';a=b' : ';q="x\\"y"') : '';
      body += `${len.toString(16)}${ext}\r\n${'y'.repeat(len)}\r\n`;
    }
    body += rand() < 0.3 ? '0\r\nX-T: 1\r\n\r\n' : '0\r\n\r\n';
  }
  return Buffer.from(`${head}\r\n${body}`, 'latin1');
}

t.test('every valid corpus request is accepted with its whole body', (t) => {
  for (const c of JSON.parse(readFileSync(new URL('valid.json', corpusDir), 'latin1')) as CorpusEntry[]) {
    const r = parseRequestHead(Buffer.from(c.request, 'latin1'), 0, MAX_HEAD);
    t.equal(r.kind, 'head', c.name);
  }
  t.end();
});

t.test('the harness sees Node refuse the classic smuggling shapes', { skip: HTTPParser ? false : 'no HTTPParser' }, (t) => {
  const H = 'Host: lb.test\r\n';
  t.ok(nodeRefuses(Buffer.from(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`)), 'CL with TE');
  t.ok(nodeRefuses(Buffer.from(`GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`)), 'obs-fold');
  t.notOk(nodeRefuses(Buffer.from(`GET / HTTP/1.1\r\n${H}\r\n`)), 'a plain GET');
  t.equal(compare(Buffer.from(`POST / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabcGET`)), undefined, 'a body framed alike');
  const refusedByUsOnly = corpus
    .filter((c) => parseRequestHead(Buffer.from(c.request, 'latin1'), 0, MAX_HEAD).kind === 'error' && !nodeRefuses(Buffer.from(c.request, 'latin1')))
    .map((c) => c.name);
  t.comment(`corpus requests we refuse and Node accepts (stricter by design): ${refusedByUsOnly.join('; ')}`);
  t.end();
});

t.test('differential fuzz against Node\'s HTTP parser', { skip: HTTPParser ? false : "node:_http_common's HTTPParser is not reachable in this Node" }, (t) => {
  const failures: string[] = [];
  const check = (b: Buffer, label: string) => {
    const why = compare(b);
    if (why !== undefined && failures.length < 20) failures.push(`${label}: ${why}\n  ${JSON.stringify(b.toString('latin1'))}`);
  };
  for (const c of corpus) check(Buffer.from(c.request, 'latin1'), `corpus ${c.name}`);
  const rand = mulberry32(SEED);
  const started = Date.now();
  let accepted = 0;
  let stricter = 0;
  for (let i = 0; i < CASES; i++) {
    // 60 % corpus mutations, 15 % generated, 25 % from the published classes (half of them mutated).
    const r = rand();
    const b =
      r < 0.6 ? mutate(rand, Buffer.from(corpus[Math.floor(rand() * corpus.length)]!.request, 'latin1'))
      : r < 0.75 ? generate(rand)
      : rand() < 0.5 ? generateClass(rand) : mutate(rand, generateClass(rand));
    const kind = parseRequestHead(b, 0, MAX_HEAD).kind;
    if (kind === 'head') accepted++;
    else if (kind === 'error' && !nodeRefuses(b)) stricter++;
    check(b, `case ${i} (seed ${SEED})`);
  }
  t.comment(`${CASES} cases, seed ${SEED}, ${accepted} heads accepted, ${stricter} refused by us and not by Node, ${Date.now() - started} ms`);
  if (process.env.CODEC_FUZZ_DUMP && failures.length > 0) writeFileSync(process.env.CODEC_FUZZ_DUMP, JSON.stringify(failures, null, 1));
  t.ok(accepted > CASES / 10, `the fuzz is not vacuous: ${accepted} of ${CASES} cases get past the head parser`);
  t.same(failures, [], 'no request we accept is rejected or framed differently by Node');
  t.end();
});
