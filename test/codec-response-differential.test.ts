/**
 * Differential fuzz of the response-head codec (src/proxy/codec/response-head.ts, with
 * ChunkedDecoder for chunked bodies) against Node's own HTTP parser (llhttp) in RESPONSE
 * mode, as node:http's client runs it: the head callback answers 1 (skip the body) to a
 * HEAD request's response. Cases are the corpus in test/fixtures/codec-corpus/
 * (responses-valid, responses-hostile, responses-regressions), seeded mutations of it
 * (test/fixtures/codec-mutate.ts) and generated responses (interim 1xx before the final
 * one, every framing, HTTP/1.0 and 1.1, to GET and to HEAD). The test FAILS when we accept
 * a response (its interim heads, final head and body framing) that Node
 *   - rejects anywhere up to where we say the message ends, or
 *   - frames otherwise: another status, reason, version, header list or keep-alive, another
 *     number of interim messages, another end of the message (the byte before our end must
 *     not complete it, our last byte must; a close-delimited body must complete only at
 *     end of stream), or other body bytes.
 * Refusing what Node accepts is allowed: the codec is stricter by design.
 *
 * 20,000 cases in `npm test`; CODEC_FUZZ_LONG=1 runs 300,000; CODEC_FUZZ_SEED=<n> picks
 * another seed; CODEC_FUZZ_DUMP=<file> writes failures there. A failing case is printed as
 * JSON: add it to codec-corpus/responses-regressions.json.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';
import { CHUNK_DATA, CHUNK_END, CHUNK_ERROR, ChunkedDecoder } from '../src/proxy/codec/chunked.js';
import { parseResponseHead } from '../src/proxy/codec/response-head.js';
import { mutateMessage } from './fixtures/codec-mutate.js';
import { mulberry32 } from './fixtures/hostile-net.js';

const LONG = process.env.CODEC_FUZZ_LONG === '1';
const CASES = LONG ? 300_000 : 20_000;
const SEED = Number(process.env.CODEC_FUZZ_SEED ?? 0x5e5b0);
const MAX_HEAD = 16 * 1024;

interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | Error;
  finish(): undefined | Error;
  [k: number]: unknown;
}
interface HTTPParserCtor {
  new (): NodeParser;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

let HTTPParser: HTTPParserCtor | undefined;
try {
  const common = createRequire(import.meta.url)('_http_common') as { HTTPParser?: HTTPParserCtor };
  if (typeof common.HTTPParser === 'function' && typeof common.HTTPParser.RESPONSE === 'number') HTTPParser = common.HTTPParser;
} catch {
  HTTPParser = undefined;
}

/** One message as Node's parser saw it. */
interface NodeMessage {
  minor: number;
  status: number;
  reason: string;
  headers: string[];
  headersDone: boolean;
  keepAlive: boolean;
  body: Buffer[];
  complete: boolean;
}
interface NodeView {
  error?: string;
  messages: NodeMessage[];
}

function blank(): NodeMessage {
  return { minor: -1, status: 0, reason: '', headers: [], headersDone: false, keepAlive: false, body: [], complete: false };
}

function nodeParser(view: NodeView, toHead: boolean): NodeParser {
  const P = HTTPParser!;
  const p = new P();
  p.initialize(P.RESPONSE, {}, 1 << 20, 0);
  const current = (): NodeMessage => {
    let m = view.messages[view.messages.length - 1];
    if (m === undefined || m.complete) view.messages.push((m = blank()));
    return m;
  };
  p[P.kOnHeaders] = (headers: string[]) => {
    const m = current();
    if (!m.headersDone) m.headers.push(...headers); // else trailers: checked by both, kept by neither
  };
  p[P.kOnHeadersComplete] = (_maj: number, minor: number, headers: string[] | undefined, _method: unknown, _url: unknown, status: number, reason: string, _upgrade: boolean, keepAlive: boolean) => {
    const m = current();
    m.headersDone = true;
    if (headers) m.headers.push(...headers);
    m.minor = minor;
    m.status = status;
    m.reason = reason ?? '';
    m.keepAlive = keepAlive;
    // node:http's client: a HEAD request's response has no body; 1xx have none either way.
    return toHead || status < 200 ? 1 : 0;
  };
  p[P.kOnBody] = (b: Buffer) => {
    current().body.push(Buffer.from(b));
  };
  p[P.kOnMessageComplete] = () => {
    current().complete = true;
  };
  return p;
}

function feed(p: NodeParser, view: NodeView, b: Buffer): void {
  if (view.error !== undefined || b.length === 0) return;
  const r = p.execute(b);
  if (r instanceof Error) view.error = (r as Error & { code?: string }).code ?? r.message;
}

function completed(view: NodeView): number {
  return view.messages.filter((m) => m.complete).length;
}

/** Whether Node's parser refuses somewhere in `bytes` (fed whole, then end of stream). */
function nodeRefuses(bytes: Buffer, toHead: boolean): boolean {
  const view: NodeView = { messages: [] };
  const p = nodeParser(view, toHead);
  feed(p, view, bytes);
  if (view.error === undefined) {
    const f = p.finish();
    if (f instanceof Error) view.error = 'finish';
  }
  return view.error !== undefined;
}

/** Why our verdict and Node's disagree, or undefined. */
export function compare(bytes: Buffer, toHead: boolean): string | undefined {
  // Ours: interim heads, then the final head and where its body ends.
  let start = 0;
  let interims = 0;
  for (;;) {
    const r = parseResponseHead(bytes, start, MAX_HEAD, toHead);
    if (r.kind !== 'head') return undefined;
    if (!r.interim) break;
    interims++;
    start = r.headEnd;
  }
  const ours = parseResponseHead(bytes, start, MAX_HEAD, toHead);
  if (ours.kind !== 'head') return undefined;
  let end: number | undefined;
  let closeDelimited = false;
  const body: Buffer[] = [];
  if (ours.upgrade || ours.body.kind === 'none') end = ours.headEnd;
  else if (ours.body.kind === 'length') {
    const e = ours.headEnd + ours.body.length;
    if (e <= bytes.length) end = e;
    body.push(bytes.subarray(ours.headEnd, Math.min(e, bytes.length)));
  } else if (ours.body.kind === 'close') {
    closeDelimited = true;
    body.push(bytes.subarray(ours.headEnd));
  } else {
    const d = new ChunkedDecoder();
    let p = ours.headEnd;
    let ev: number;
    while ((ev = d.step(bytes, p, bytes.length)) === CHUNK_DATA) {
      body.push(bytes.subarray(d.dataStart, d.dataEnd));
      p = d.pos;
    }
    if (ev === CHUNK_ERROR) return undefined;
    if (ev === CHUNK_END) end = d.pos;
  }

  const view: NodeView = { messages: [] };
  const p = nodeParser(view, toHead);
  if (closeDelimited) {
    feed(p, view, bytes);
    if (view.error) return `we accept (close-delimited), Node rejects: ${view.error}`;
    if (completed(view) !== interims) return 'Node completes the message before the end of stream';
    const f = p.finish();
    if (f instanceof Error) return `Node rejects the end of stream: ${f.message}`;
    if (completed(view) !== interims + 1) return 'Node does not end the message at the end of stream';
  } else if (end === undefined) {
    feed(p, view, bytes);
    if (view.error) return `we accept (body incomplete), Node rejects: ${view.error}`;
    if (completed(view) > interims) return 'Node completes the message, we want more body bytes';
  } else {
    feed(p, view, bytes.subarray(0, end - 1));
    if (view.error) return `we accept, Node rejects: ${view.error}`;
    if (completed(view) > interims) return `Node ends the message before our end ${end}`;
    feed(p, view, bytes.subarray(end - 1, end));
    if (view.error) return `we accept, Node rejects: ${view.error}`;
    if (completed(view) !== interims + 1) return `Node does not end the message at our end ${end} (${completed(view)} messages, ${interims} interim)`;
  }
  const m = view.messages[interims];
  if (m === undefined || !m.headersDone) return 'Node did not finish the final head';
  if (m.status !== ours.status) return `status: ours ${ours.status}, Node ${m.status}`;
  if (m.reason !== ours.reason) return `reason: ours ${JSON.stringify(ours.reason)}, Node ${JSON.stringify(m.reason)}`;
  if (m.minor !== ours.versionMinor) return `version: ours 1.${ours.versionMinor}, Node 1.${m.minor}`;
  if (JSON.stringify(m.headers) !== JSON.stringify(ours.headers)) return `headers: ours ${JSON.stringify(ours.headers)}, Node ${JSON.stringify(m.headers)}`;
  // Allowed: we never reuse a connection after 101 or a close-delimited body, and with
  // `close` and `keep-alive` both listed in HTTP/1.0, close wins for us.
  const closeListed = ours.headers.some((v, i) => i % 2 === 1 && /^connection$/i.test(ours.headers[i - 1]!) && /(^|,)\s*close\s*(,|$)/i.test(v));
  const allowedClose = !ours.keepAlive && (ours.upgrade || closeListed);
  if (m.keepAlive !== ours.keepAlive && !allowedClose) return `keep-alive: ours ${ours.keepAlive}, Node ${m.keepAlive}`;
  if (!Buffer.concat(m.body).equals(Buffer.concat(body))) return 'body bytes differ';
  return undefined;
}

interface CorpusEntry {
  name: string;
  response: string;
  head?: boolean;
}
const corpusDir = new URL('./fixtures/codec-corpus/', import.meta.url);
const corpus: CorpusEntry[] = ['responses-valid.json', 'responses-hostile.json', 'responses-regressions.json'].flatMap(
  (f) => JSON.parse(readFileSync(new URL(f, corpusDir), 'latin1')) as CorpusEntry[],
);

const NAMES = ['Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Set-Cookie', 'Content-Type', 'X-A', 'Trailer'];
const VALUES = ['chunked', ' chunked', 'Chunked', 'identity', 'gzip, chunked', 'chunked, gzip', '5', '05', '+5', '5,5', '', '0', 'close', 'keep-alive', 'keep-alive, close', 'upgrade', 'websocket', 'JSESSIONID=1; Path=/', 'a\tb', 'caf\xe9'];
const STATUSES = [100, 101, 103, 200, 200, 200, 201, 204, 206, 301, 302, 304, 400, 404, 500, 502, 503];

/** A fresh response: optional interim heads, a status, headers and one of the framings. */
function generate(rand: () => number): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  let out = '';
  if (rand() < 0.15) out += rand() < 0.7 ? 'HTTP/1.1 100 Continue\r\n\r\n' : 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n';
  const minor = rand() < 0.15 ? 0 : 1;
  const status = STATUSES[pick(STATUSES.length)]!;
  let head = `HTTP/1.${minor} ${status}${rand() < 0.1 ? '' : ` ${['OK', 'Continue', '', 'Not Found', 'x y\tz'][pick(5)]}`}\r\n`;
  const n = pick(5);
  for (let i = 0; i < n; i++) head += `${NAMES[pick(NAMES.length)]}: ${VALUES[pick(VALUES.length)]}\r\n`;
  const kind = pick(4);
  let body = '';
  if (kind === 1) {
    const len = pick(20);
    head += `Content-Length: ${len}\r\n`;
    body = 'x'.repeat(len);
  } else if (kind === 2 && minor === 1) {
    head += 'Transfer-Encoding: chunked\r\n';
    for (let i = pick(3); i > 0; i--) {
      const len = 1 + pick(20);
      const ext = rand() < 0.3 ? (rand() < 0.5 ? ';a=b' : ';q="x\\"y"') : '';
      body += `${len.toString(16)}${ext}\r\n${'y'.repeat(len)}\r\n`;
    }
    body += rand() < 0.3 ? '0\r\nX-T: 1\r\n\r\n' : '0\r\n\r\n';
  } else if (kind === 3) {
    body = 'close-delimited body';
  }
  if (rand() < 0.2) body += 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz'; // a second response behind it
  return Buffer.from(`${out}${head}\r\n${body}`, 'latin1');
}

t.test('every valid corpus response is accepted, every hostile one refused', (t) => {
  const file = (f: string) => JSON.parse(readFileSync(new URL(f, corpusDir), 'latin1')) as CorpusEntry[];
  for (const c of file('responses-valid.json')) {
    t.equal(parseResponseHead(Buffer.from(c.response, 'latin1'), 0, MAX_HEAD, c.head === true).kind, 'head', c.name);
  }
  for (const c of file('responses-hostile.json')) {
    const b = Buffer.from(c.response, 'latin1');
    const r = parseResponseHead(b, 0, MAX_HEAD, c.head === true);
    let refused = r.kind === 'error';
    if (r.kind === 'head' && r.body.kind === 'chunked') {
      const d = new ChunkedDecoder();
      let p = r.headEnd;
      let ev: number;
      while ((ev = d.step(b, p, b.length)) === CHUNK_DATA) p = d.pos;
      refused = ev === CHUNK_ERROR;
    }
    if (c.name.startsWith('two responses')) refused = r.kind === 'head' && r.body.kind === 'none' && r.headEnd < b.length;
    t.ok(refused, c.name);
  }
  t.end();
});

t.test('the harness sees Node frame and refuse as expected', { skip: HTTPParser ? false : 'no HTTPParser' }, (t) => {
  t.ok(nodeRefuses(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), false), 'CL with TE');
  t.notOk(nodeRefuses(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'), false), 'a plain 200');
  t.equal(compare(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP'), false), undefined, 'a body framed alike');
  t.equal(compare(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n'), true), undefined, 'HEAD framed alike');
  t.equal(compare(Buffer.from('HTTP/1.1 200 OK\r\n\r\nrest'), false), undefined, 'close-delimited framed alike');
  t.equal(compare(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'), false), undefined, 'interim then final');
  const refusedByUsOnly = corpus
    .filter((c) => parseResponseHead(Buffer.from(c.response, 'latin1'), 0, MAX_HEAD, c.head === true).kind === 'error' && !nodeRefuses(Buffer.from(c.response, 'latin1'), c.head === true))
    .map((c) => c.name);
  t.comment(`corpus responses we refuse and Node accepts (stricter by design): ${refusedByUsOnly.join('; ')}`);
  t.end();
});

t.test("differential fuzz against Node's HTTP parser in response mode", { skip: HTTPParser ? false : "node:_http_common's HTTPParser is not reachable in this Node" }, (t) => {
  const failures: string[] = [];
  const check = (b: Buffer, toHead: boolean, label: string) => {
    const why = compare(b, toHead);
    if (why !== undefined && failures.length < 20) failures.push(`${label}${toHead ? ' (to HEAD)' : ''}: ${why}\n  ${JSON.stringify(b.toString('latin1'))}`);
  };
  for (const c of corpus) check(Buffer.from(c.response, 'latin1'), c.head === true, `corpus ${c.name}`);
  const rand = mulberry32(SEED);
  const started = Date.now();
  let accepted = 0;
  let stricter = 0;
  for (let i = 0; i < CASES; i++) {
    const b = rand() < 0.7 ? mutateMessage(rand, Buffer.from(corpus[Math.floor(rand() * corpus.length)]!.response, 'latin1'), NAMES, VALUES) : generate(rand);
    const toHead = rand() < 0.2;
    const kind = parseResponseHead(b, 0, MAX_HEAD, toHead).kind;
    if (kind === 'head') accepted++;
    else if (kind === 'error' && !nodeRefuses(b, toHead)) stricter++;
    check(b, toHead, `case ${i} (seed ${SEED})`);
  }
  t.comment(`${CASES} cases, seed ${SEED}, ${accepted} heads accepted, ${stricter} refused by us and not by Node, ${Date.now() - started} ms`);
  if (process.env.CODEC_FUZZ_DUMP && failures.length > 0) writeFileSync(process.env.CODEC_FUZZ_DUMP, JSON.stringify(failures, null, 1));
  t.ok(accepted > CASES / 10, `the fuzz is not vacuous: ${accepted} of ${CASES} cases get past the head parser`);
  t.same(failures, [], 'no response we accept is rejected or framed differently by Node');
  t.end();
});
