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

/** AccessSink takes finished lines (newline included). */
export interface AccessSink {
  write(line: string): void;
}

/**
 * AccessLog formats entries and hands the lines to its sink. `format` may change on a
 * reload, and the sink is swapped by its owner (LocalTraffic); whether lines are written
 * at all (log.access) is the proxy's ProxySettings.accessLog, so no entry is even built.
 */
export class AccessLog {
  format: AccessFormat;
  sink: AccessSink;
  /** The JSON line's fixed part after `time` (`,"worker":n,"log":"access"`). */
  readonly #jsonFixed: string;

  constructor(options: { format: AccessFormat; sink: AccessSink; worker?: number | undefined }) {
    this.format = options.format;
    this.sink = options.sink;
    this.#jsonFixed = `${options.worker === undefined ? '' : `,"worker":${options.worker}`},"log":"access"`;
  }

  /** write logs one entry. */
  write(entry: AccessEntry): void {
    const now = Date.now();
    this.sink.write(this.format === 'combined' ? combinedLine(entry, now - entry.ms) : jsonLine(entry, now, this.#jsonFixed));
  }
}

/** jsonLine is an entry as a JSON line (`time` in epoch ms, as pino writes it). */
export function jsonLine(e: AccessEntry, time: number, fixed = ',"log":"access"'): string {
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

/** combinedLine is an entry in Apache's combined log format; `startedAt` (epoch ms) is %t, when the request came in. */
export function combinedLine(e: AccessEntry, startedAt: number): string {
  return (
    `${e.client === '' ? '-' : e.client} - - [${clfTime(startedAt)}] "${apacheEscape(e.method)} ${apacheEscape(e.path)} HTTP/${e.httpVersion}" ` +
    `${e.status} ${e.bytesOut === 0 ? '-' : e.bytesOut} "${quoted(e.referer)}" "${quoted(e.userAgent)}"\n`
  );
}

function quoted(value: string | undefined): string {
  return value === undefined || value === '' ? '-' : apacheEscape(value);
}

/** Characters Apache escapes in a log line: quote, backslash, control and non-ASCII bytes. */
const NEEDS_ESCAPE = /["\\\x00-\x1f\x7f-\uffff]/;

/**
 * apacheEscape escapes as Apache's ap_escape_logitem does: `"` and `\` get a backslash,
 * \b \n \r \t \v their C escapes, every other control or non-ASCII byte `\xhh` (of its
 * UTF-8 encoding; header values arrive as latin1, one byte per character).
 */
export function apacheEscape(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 8) out += '\\b';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${hex(c)}`;
    else if (c > 0x7f && c <= 0xff) out += `\\x${hex(c)}`;
    else if (c > 0xff) for (const b of Buffer.from(ch, 'utf8')) out += `\\x${hex(b)}`;
    else out += ch;
  }
  return out;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
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
