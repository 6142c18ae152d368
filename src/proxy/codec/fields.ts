/**
 * Header-field helpers shared by the request and response codecs:
 * case-insensitive name tests, Connection tokens and Content-Length digits, each a scan
 * of a byte range with no allocation.
 */
import { HTAB, SP } from './bytes.js';

/** Connection flags from connectionFlags(). */
export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/** Most digits of a Content-Length (10^15 is below 2^53: every accepted length is exact). */
export const MAX_LENGTH_DIGITS = 15;

/** nameIs: buf[s, e) equals the lower-case ASCII `lit` ignoring case (letters and `-` only). */
export function nameIs(buf: Buffer, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) if ((buf[s + i]! | 0x20) !== lit.charCodeAt(i)) return false;
  return true;
}

/** connectionFlags: the CONN_* tokens listed in a Connection value buf[s, e). */
export function connectionFlags(buf: Buffer, s: number, e: number): number {
  let flags = 0;
  let p = s;
  while (p <= e) {
    let q = p;
    while (q < e && buf[q] !== 0x2c) q++;
    let a = p;
    let b = q;
    while (a < b && (buf[a] === SP || buf[a] === HTAB)) a++;
    while (b > a && (buf[b - 1] === SP || buf[b - 1] === HTAB)) b--;
    if (nameIs(buf, a, b, 'close')) flags |= CONN_CLOSE;
    else if (nameIs(buf, a, b, 'keep-alive')) flags |= CONN_KEEP_ALIVE;
    else if (nameIs(buf, a, b, 'upgrade')) flags |= CONN_UPGRADE;
    p = q + 1;
  }
  return flags;
}

/**
 * decimalLength: the Content-Length spelled by buf[s, e) (1 to 15 decimal digits, nothing
 * else: no sign, no list, no inner space), or -1. Parsers that read `5, 5` or `+5` or `0x5`
 * differently are the classic desync, so anything but plain digits is refused.
 */
export function decimalLength(buf: Buffer, s: number, e: number): number {
  const digits = e - s;
  if (digits === 0 || digits > MAX_LENGTH_DIGITS) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * internedName: buf[s, e) as a string, the shared one from `byLength` (names grouped by
 * length) when it is spelled exactly like one: no new string for the common names.
 */
export function internedName(byLength: readonly (readonly string[] | undefined)[], buf: Buffer, s: number, e: number): string {
  const candidates = byLength[e - s];
  if (candidates !== undefined) {
    outer: for (const n of candidates) {
      for (let i = 0; i < n.length; i++) if (buf[s + i] !== n.charCodeAt(i)) continue outer;
      return n;
    }
  }
  return buf.toString('latin1', s, e);
}

/** The lower-case form of each name the codecs intern (namesByLength fills it). */
const LOWER = new Map<string, string>();

/** namesByLength: the table internedName() takes (its names' lower-case forms go to lowerName's table). */
export function namesByLength(names: readonly string[]): string[][] {
  const table: string[][] = [];
  for (const n of names) {
    (table[n.length] ??= []).push(n);
    LOWER.set(n, n.toLowerCase());
  }
  return table;
}

/**
 * lowerName is a header name in lower case: for the names the codecs intern, a lookup of
 * the form made once (no new string per request); for others, lower-cased only when some
 * letter is upper-case.
 */
export function lowerName(name: string): string {
  const known = LOWER.get(name);
  if (known !== undefined) return known;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}
