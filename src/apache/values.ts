/**
 * Small readers for the values inside Apache directives: `key=value` parameters, worker
 * URLs, `status=` flags, timeouts in httpd's units, the route cookie of the classic
 * `Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e"` recipe; and writers for
 * what servoy-lb expects (durations, backend ids). Pure.
 */

/** Param is one `key=value` argument (key in lower case), or a bare word (value undefined). */
export interface Param {
  key: string;
  value: string | undefined;
  /** As written, for messages. */
  raw: string;
}

/** parseParams reads `key=value` arguments; surrounding quotes of a value are removed. */
export function parseParams(args: readonly string[]): Param[] {
  return args.map((raw) => {
    const eq = raw.indexOf('=');
    if (eq <= 0) return { key: raw.toLowerCase(), value: undefined, raw };
    let value = raw.slice(eq + 1);
    const m = /^(["'])(.*)\1$/.exec(value);
    if (m) value = m[2]!;
    return { key: raw.slice(0, eq).toLowerCase(), value, raw };
  });
}

/** ApacheUrl is a URL of a worker, a balancer (`balancer://name/path`) or a rewrite target. */
export interface ApacheUrl {
  /** Lower case: http, https, ws, wss, ajp, balancer, ... */
  scheme: string;
  /** Host name, IP address (IPv6 in brackets) or balancer name, as written. */
  host: string;
  port?: number;
  /** A port written as `${NAME}`, left for the environment. */
  portRef?: string;
  /** Path as written ('' when none). */
  path: string;
  /** True when the authority had `user@`. */
  userinfo: boolean;
  raw: string;
}

/**
 * parseUrl reads `scheme://authority/path`. Hand-written rather than `new URL` so that a
 * host such as `${APP_HOST}` keeps its case (servoy-lb reads it from the environment).
 */
export function parseUrl(raw: string): ApacheUrl | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(raw);
  if (!m) return undefined;
  let authority = m[2]!;
  const at = authority.lastIndexOf('@');
  const userinfo = at !== -1;
  if (userinfo) authority = authority.slice(at + 1);
  let host = authority;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
    }
  }
  if (host === '') return undefined;
  const url: ApacheUrl = { scheme: m[1]!.toLowerCase(), host, path: m[3]!, userinfo, raw };
  if (portText !== undefined && portText !== '') {
    if (/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(portText)) url.portRef = portText;
    else if (/^\d{1,5}$/.test(portText) && Number(portText) <= 65535) url.port = Number(portText);
    else return undefined;
  }
  return url;
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, ws: 80, https: 443, wss: 443, ajp: 8009, h2c: 80, h2: 443 };

/** hostPort names the server a URL reaches: lower-case host and port, default port filled in. */
export function hostPort(url: ApacheUrl): string {
  const host = url.host.includes('${') ? url.host : url.host.toLowerCase();
  return `${host}:${url.portRef ?? url.port ?? DEFAULT_PORTS[url.scheme] ?? 0}`;
}

/** isTlsScheme: https and wss. */
export function isTlsScheme(scheme: string): boolean {
  return scheme === 'https' || scheme === 'wss';
}

/** normalizePath compares paths the way ProxyPass maps them: no trailing slash, '' for the root. */
export function normalizePath(path: string): string {
  return path.replace(/\/+$/, '');
}

/** The `status=` flags of mod_proxy, by letter. */
export const STATUS_FLAGS: Record<string, string> = {
  D: 'disabled',
  S: 'stopped',
  I: 'ignore errors',
  H: 'hot standby',
  E: 'in error',
  N: 'draining',
  R: 'hot spare',
  C: 'health check failed',
};

/** parseStatus reads `+H`, `-D`, `D`, `+H+I`: the flags left set, and unknown letters. */
export function parseStatus(value: string): { flags: Set<string>; unknown: string[] } {
  const flags = new Set<string>();
  const unknown: string[] = [];
  let on = true;
  for (const c of value) {
    if (c === '+') on = true;
    else if (c === '-') on = false;
    else {
      const letter = c.toUpperCase();
      if (STATUS_FLAGS[letter] === undefined) unknown.push(c);
      else if (on) flags.add(letter);
      else flags.delete(letter);
      on = true;
    }
  }
  return { flags, unknown };
}

/**
 * parseTimeout reads an httpd timeout: a number in `defaultUnit` (seconds for nearly all),
 * or with a unit as ap_timeout_parameter_parse allows: ms, s, mi (minutes), h. Returns
 * milliseconds, or undefined when it is not a timeout.
 */
export function parseTimeout(value: string, defaultUnit: 'ms' | 's' = 's'): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|mi|min|m|h)?\s*$/i.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? defaultUnit).toLowerCase();
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000;
  return Math.round(n * factor);
}

/** formatDuration writes milliseconds as servoy-lb's readable duration: "5s", "5m", "2h", "250ms". */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** isOn reads httpd's On/Off switches. */
export function isOn(value: string | undefined): boolean {
  return /^(on|true|1|yes)$/i.test(value ?? '');
}

/** A token as servoy-lb wants backend ids and routes. */
export const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** RouteCookie is what `Header add Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; ..."` sets. */
export interface RouteCookie {
  name: string;
  secure: boolean;
  httpOnly: boolean;
  sameSite?: string;
  /** Max-Age in ms, if given. */
  maxAgeMs?: number;
  /** Attributes servoy-lb has no setting for (Domain, Path other than /, Expires). */
  unsupported: string[];
}

/** parseRouteCookie reads the Set-Cookie value of the route-cookie recipe. */
export function parseRouteCookie(value: string): RouteCookie | undefined {
  const [first = '', ...attributes] = value.split(';').map((part) => part.trim());
  const eq = first.indexOf('=');
  if (eq <= 0) return undefined;
  const cookie: RouteCookie = { name: first.slice(0, eq).trim(), secure: false, httpOnly: false, unsupported: [] };
  for (const attribute of attributes) {
    if (attribute === '') continue;
    const [rawName = '', ...rest] = attribute.split('=');
    const name = rawName.trim().toLowerCase();
    const val = rest.join('=').trim();
    if (name === 'secure') cookie.secure = true;
    else if (name === 'httponly') cookie.httpOnly = true;
    else if (name === 'samesite') cookie.sameSite = val;
    else if (name === 'max-age' && /^\d+$/.test(val)) cookie.maxAgeMs = Number(val) * 1000;
    else if (name === 'path' && val === '/') continue;
    else cookie.unsupported.push(attribute);
  }
  return cookie;
}

/** plural: "1 server", "2 servers". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** list: "a", "a and b", "a, b and c". */
export function list(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}
