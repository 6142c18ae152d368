/**
 * The access log: one line per request (and per WebSocket handshake), built by hand on the
 * hot path instead of through a pino child logger (bench/access-log.js measures both), in
 * one of two formats:
 *
 * - `json`: one JSON object per line, shaped like the service log's lines (`level`, `time`,
 *   `log: "access"`, and `worker` with --workers), so one log pipeline reads both;
 * - `combined`: Apache's combined log format, for GoAccess, AWStats and the habits of
 *   administrators: `%h - - [%d/%b/%Y:%H:%M:%S %z] "%r" %>s %b "%{Referer}i" "%{User-agent}i"`,
 *   with Apache's escaping (`\"`, `\\`, `\xhh`) and `-` for an empty value.
 *
 * Where the lines go (stdout or log.file) is the AccessSink's business (src/log-file.ts).
 */
import { LineBuffer, MAX_BYTES_PER_UNIT } from './line-buffer.js';

/** AccessFormat is `log.format`. */
export type AccessFormat = 'json' | 'combined';

/** AccessEntry is what one access-log line says about one request. */
export interface AccessEntry {
  /** The client's address: the peer, or behind a trusted proxy the client it names. */
  readonly client: string;
  readonly method: string;
  readonly host: string | undefined;
  /** The request target as sent (path and query). */
  readonly path: string;
  /** "1.1" or "1.0" (the combined format's request line). */
  readonly httpVersion: string;
  readonly status: number;
  readonly backend: string | undefined;
  /** The routing rule that decided (RouteReason), or the path verdict that answered. */
  readonly route: string | undefined;
  /** Milliseconds from the request's head to its end (to the handshake's answer for WebSockets). */
  readonly ms: number;
  /** Bytes received from the client for this request, head included (like mod_logio's %I). */
  readonly bytesIn: number;
  /** Response body bytes sent to the client. */
  readonly bytesOut: number;
  readonly userAgent: string | undefined;
  readonly referer: string | undefined;
  readonly requestId: string | undefined;
  /** How the exchange ended (ExchangeOutcome); undefined for WebSocket handshakes. */
  readonly outcome: string | undefined;
  readonly websocket: boolean;
}

/**
 * AccessRecord is an AccessEntry filled in field by field: the proxy reuses one for every
 * request it logs (AccessLog.write encodes an entry at once and keeps no reference), so a
 * logged request allocates no entry object.
 */
export type AccessRecord = { -readonly [K in keyof AccessEntry]: AccessEntry[K] };

/** RequestAccessFields are the fields an exchange fills in from its request (fillAccessFields). */
export type RequestAccessFields = Pick<AccessRecord, 'method' | 'host' | 'path' | 'httpVersion' | 'bytesIn' | 'userAgent' | 'referer'>;

/** accessRecord is a blank record, every field present from the start so its shape never changes. */
export function accessRecord(): AccessRecord {
  return {
    client: '',
    method: '',
    host: undefined,
    path: '',
    httpVersion: '1.1',
    status: 0,
    backend: undefined,
    route: undefined,
    ms: 0,
    bytesIn: 0,
    bytesOut: 0,
    userAgent: undefined,
    referer: undefined,
    requestId: undefined,
    outcome: undefined,
    websocket: false,
  };
}

/**
 * AccessSink takes batches of finished lines as UTF-8 bytes (each line newline-terminated,
 * never a line cut in two): bytes, so the batch reaches the file descriptor without a
 * round trip through a string. The sink owns the buffer it is given.
 */
export interface AccessSink {
  write(lines: Buffer): void;
}

/** Pending bytes past which a batch is handed to the sink at once rather than at the end of the tick. */
const FLUSH_AT = 8 * 1024;
/**
 * A worker's batches stay within what a pipe writes atomically (PIPE_BUF): with --workers
 * every process writes to the same stdout, and a longer write can interleave with another
 * worker's in the middle of a line. (A single line longer than this cannot be helped.)
 */
const ATOMIC_WRITE = 4096;
/** Bytes a line takes beyond its variable strings, at most: names, numbers, the time, `fixed`. */
const LINE_OVERHEAD = 512;

/**
 * AccessLog formats entries into one reused LineBuffer and hands what gathered to its sink
 * once per turn of the event loop (setImmediate), or as soon as FLUSH_AT bytes are
 * pending: one sink write per tick rather than per line. flush() hands over what is
 * pending now; the owner (LocalTraffic) calls it before the sink is closed or reopened and
 * at shutdown, and setting `sink` flushes into the old one first, so no line is lost or
 * lands in the wrong file. `format` may change on a reload; whether lines are written at
 * all (log.access) is the proxy's ProxySettings.accessLog, so no entry is even built.
 */
export class AccessLog {
  format: AccessFormat;
  #sink: AccessSink;
  readonly #lines = new LineBuffer();
  #scheduled = false;
  /** The JSON line's fixed part after `time` (`,"worker":n,"log":"access"`). */
  readonly #jsonFixed: string;
  /** FLUSH_AT, or ATOMIC_WRITE in a worker (see there). */
  readonly #batchLimit: number;
  /** In a worker no batch handed over goes past #batchLimit by a line: the lines before it go alone. */
  readonly #atomic: boolean;
  /** Bound once: setImmediate's callback at the end of a tick with lines pending. */
  readonly #flushAtTickEnd = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(options: { format: AccessFormat; sink: AccessSink; worker?: number | undefined }) {
    this.format = options.format;
    this.#sink = options.sink;
    this.#jsonFixed = `${options.worker === undefined ? '' : `,"worker":${options.worker}`},"log":"access"`;
    this.#atomic = options.worker !== undefined;
    this.#batchLimit = this.#atomic ? ATOMIC_WRITE : FLUSH_AT;
  }

  /** sink is where batches go; setting it hands what is pending to the old sink first. */
  get sink(): AccessSink {
    return this.#sink;
  }

  set sink(next: AccessSink) {
    this.flush();
    this.#sink = next;
  }

  /** write logs one entry (into the pending batch). */
  write(entry: AccessEntry): void {
    const now = Date.now();
    const lines = this.#lines;
    lines.reserve(worstCaseBytes(entry));
    const before = lines.length;
    if (this.format === 'combined') encodeCombined(lines, entry, now - entry.ms);
    else encodeJson(lines, entry, now, this.#jsonFixed);
    // The lines before this one go out on their own rather than past the limit with it.
    if (this.#atomic && lines.length > ATOMIC_WRITE && before > 0) this.#sink.write(lines.takeFirst(before));
    if (lines.length >= this.#batchLimit) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushAtTickEnd);
    }
  }

  /** flush hands the pending lines to the sink now (before a reopen, a close, an exit). */
  flush(): void {
    if (this.#lines.length === 0) return;
    this.#sink.write(this.#lines.takeBytes());
  }
}

/** The most bytes an entry's line can take (every string escaped at its worst). */
function worstCaseBytes(e: AccessEntry): number {
  const units =
    e.client.length + e.method.length + (e.host?.length ?? 0) + e.path.length + (e.backend?.length ?? 0) + (e.route?.length ?? 0) +
    (e.userAgent?.length ?? 0) + (e.referer?.length ?? 0) + (e.requestId?.length ?? 0) + (e.outcome?.length ?? 0);
  return units * MAX_BYTES_PER_UNIT + LINE_OVERHEAD;
}

/**
 * encodeJson writes an entry as a JSON line (`time` in epoch ms, as pino writes it); the
 * same bytes as the JSON.stringify-built line it replaced. `route` and `outcome` are fixed
 * identifiers (RouteReason, the path verdict, ExchangeOutcome), written as they are, unescaped.
 */
function encodeJson(b: LineBuffer, e: AccessEntry, time: number, fixed: string): void {
  b.ascii('{"level":30,"time":');
  b.number(time);
  b.ascii(fixed);
  b.ascii(',"client":');
  b.jsonString(e.client);
  b.ascii(',"method":');
  b.jsonString(e.method);
  if (e.host !== undefined) {
    b.ascii(',"host":');
    b.jsonString(e.host);
  }
  b.ascii(',"path":');
  b.jsonString(e.path);
  b.ascii(',"status":');
  b.number(e.status);
  if (e.backend !== undefined) {
    b.ascii(',"backend":');
    b.jsonString(e.backend);
  }
  if (e.route !== undefined) {
    b.ascii(',"route":"');
    b.text(e.route);
    b.byte(0x22);
  }
  b.ascii(',"ms":');
  b.number(e.ms);
  b.ascii(',"bytesIn":');
  b.number(e.bytesIn);
  b.ascii(',"bytes":');
  b.number(e.bytesOut);
  if (e.userAgent !== undefined) {
    b.ascii(',"ua":');
    b.jsonString(e.userAgent);
  }
  if (e.referer !== undefined) {
    b.ascii(',"referer":');
    b.jsonString(e.referer);
  }
  if (e.requestId !== undefined) {
    b.ascii(',"requestId":');
    b.jsonString(e.requestId);
  }
  if (e.outcome !== undefined) {
    b.ascii(',"outcome":"');
    b.text(e.outcome);
    b.byte(0x22);
  }
  if (e.websocket) b.ascii(',"websocket":true');
  b.ascii('}\n');
}

/** encodeCombined writes an entry in Apache's combined log format; `startedAt` (epoch ms) is %t. */
function encodeCombined(b: LineBuffer, e: AccessEntry, startedAt: number): void {
  if (e.client === '') b.byte(0x2d);
  else b.text(e.client);
  b.ascii(' - - [');
  b.ascii(clfTime(startedAt));
  b.ascii('] "');
  b.apacheString(e.method);
  b.byte(0x20);
  b.apacheString(e.path);
  b.ascii(' HTTP/');
  b.text(e.httpVersion);
  b.ascii('" ');
  b.number(e.status);
  b.byte(0x20);
  if (e.bytesOut === 0) b.byte(0x2d);
  else b.number(e.bytesOut);
  b.ascii(' "');
  quoted(b, e.referer);
  b.ascii('" "');
  quoted(b, e.userAgent);
  b.ascii('"\n');
}

function quoted(b: LineBuffer, value: string | undefined): void {
  if (value === undefined || value === '') b.byte(0x2d);
  else b.apacheString(value);
}

/** A scratch buffer for the one-line string forms below (tests, benches; not the request path). */
const scratch = new LineBuffer(4096);

/** jsonLine is an entry as one JSON line, a string (what AccessLog writes in `json`). */
export function jsonLine(e: AccessEntry, time: number, fixed = ',"log":"access"'): string {
  scratch.reserve(worstCaseBytes(e) + fixed.length);
  encodeJson(scratch, e, time, fixed);
  return scratch.take();
}

/** combinedLine is an entry as one combined-format line, a string; `startedAt` (epoch ms) is %t, when the request came in. */
export function combinedLine(e: AccessEntry, startedAt: number): string {
  scratch.reserve(worstCaseBytes(e));
  encodeCombined(scratch, e, startedAt);
  return scratch.take();
}

/**
 * apacheEscape escapes as Apache's ap_escape_logitem does: `"` and `\` get a backslash,
 * \b \n \r \t \v their C escapes, every other control or non-ASCII byte `\xhh` (of its
 * UTF-8 encoding; header values arrive as latin1, one byte per character).
 */
export function apacheEscape(value: string): string {
  scratch.reserve(value.length * MAX_BYTES_PER_UNIT);
  scratch.apacheString(value);
  return scratch.take();
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** The last second formatted (a busy balancer logs many lines per second). */
let clfSecond = -1;
let clfText = '';

/** clfTime is `%d/%b/%Y:%H:%M:%S %z` in local time, as Apache's %t (cached per second). */
export function clfTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === clfSecond) return clfText;
  const d = new Date(second * 1000);
  const offset = -d.getTimezoneOffset();
  const abs = Math.abs(offset);
  clfText =
    `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ` +
    `${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
  clfSecond = second;
  return clfText;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Per connection: its bytesRead when its previous request was logged. */
const LOGGED_BYTES = Symbol('servoy-lb.loggedBytes');

/**
 * bytesInOf is what a connection received since its previous request was logged: this
 * request's head and body (keep-alive requests follow each other on one connection).
 */
export function bytesInOf(socket: { bytesRead: number } | null): number {
  if (socket === null) return 0;
  const holder = socket as { bytesRead: number; [LOGGED_BYTES]?: number };
  const read = holder.bytesRead;
  const bytes = read - (holder[LOGGED_BYTES] ?? 0);
  holder[LOGGED_BYTES] = read;
  return bytes;
}
