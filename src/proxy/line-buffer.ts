/**
 * LineBuffer: the access log's lines are encoded straight into one reused byte buffer, as
 * UTF-8, with the escaping of each format done on the way (JSON's, exactly as
 * JSON.stringify; Apache's ap_escape_logitem), instead of being assembled from
 * template strings and JSON.stringify results. Per request that saves a dozen temporary
 * strings and the re-encoding of the whole line when it is written (bench/log-metrics.js).
 *
 * Hot-path code: plain loops over charCodeAt with byte stores into a Uint8Array, no
 * closures, no per-call allocation except String(n) for a non-integer number. Callers
 * reserve room for a whole line first (reserve), so no single store checks bounds.
 */

/** Bytes a UTF-16 code unit can take at most once escaped: Apache's `\xhh` for each of 3 UTF-8 bytes. */
export const MAX_BYTES_PER_UNIT = 12;

const HEX = '0123456789abcdef';
/** Numbers below this are written as hundredths without String(n) when they are some k/100 (k then fits an int32). */
const HUNDREDTHS_BELOW = 0x7fffffff / 100;
/** From this length on, a string is written by native calls (which cost a fixed ~40 ns each) rather than a loop. */
const NATIVE_FROM = 24;
/** Characters Apache escapes: quote, backslash, control and non-ASCII. */
const APACHE_ESCAPES = /["\\\x00-\x1f\x7f-\uffff]/;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;

/** LineBuffer is a growable byte buffer that lines are encoded into; see the file comment. */
export class LineBuffer {
  buf: Buffer;
  /** Bytes used. */
  length = 0;

  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** free is how many bytes can still be written without growing. */
  get free(): number {
    return this.buf.length - this.length;
  }

  /** reserve makes room for `bytes` more bytes, growing (by copying) when needed. */
  reserve(bytes: number): void {
    if (this.length + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + bytes));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  /** take returns the bytes written so far as a string and empties the buffer. */
  take(): string {
    const text = this.buf.toString('utf8', 0, this.length);
    this.length = 0;
    return text;
  }

  /**
   * takeBytes returns a copy of the bytes written so far and empties the buffer: the copy
   * is what a sink may keep until its write completes, while this buffer is reused at once.
   */
  takeBytes(): Buffer {
    const bytes = Buffer.allocUnsafe(this.length);
    this.buf.copy(bytes, 0, 0, this.length);
    this.length = 0;
    return bytes;
  }

  /** takeFirst is takeBytes for the first `n` bytes only; what follows them moves to the front. */
  takeFirst(n: number): Buffer {
    const bytes = Buffer.allocUnsafe(n);
    this.buf.copy(bytes, 0, 0, n);
    this.buf.copy(this.buf, 0, n, this.length);
    this.length -= n;
    return bytes;
  }

  /** ascii writes a string known to hold only ASCII (field names, fixed words, numbers). */
  ascii(s: string): void {
    const buf = this.buf;
    let p = this.length;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.length = p;
  }

  /** text writes a string as UTF-8, unescaped (an ASCII loop; the rare rest natively). */
  text(s: string): void {
    const buf = this.buf;
    let p = this.length;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.length = p + buf.write(s.slice(i), p, 'utf8');
        return;
      }
      buf[p++] = c;
    }
    this.length = p;
  }

  /** byte writes one ASCII byte. */
  byte(c: number): void {
    this.buf[this.length++] = c;
  }

  /**
   * number writes a number as String(n) does. Non-negative integers below 2^31 are written
   * digit by digit in int32 arithmetic, up to 2^53 (epoch milliseconds) as two such halves,
   * and hundredths (durations in ms) as two integers: no temporary string, and faster than
   * String(n) on the request path.
   */
  number(n: number): void {
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n) {
      if (n < 0x80000000) {
        this.#int32(n, 0);
        return;
      }
      const high = Math.floor(n / 1e6);
      if (high < 0x80000000) {
        this.#int32(high, 0);
        this.#int32(n - high * 1e6, 6);
        return;
      }
    } else if (n > 0 && n < HUNDREDTHS_BELOW) {
      // Milliseconds rounded to hundredths (the access log's `ms`): when n is the double
      // nearest k/100, String(n) is k/100's decimal, trailing zero dropped.
      const k = Math.round(n * 100);
      if (k / 100 === n) {
        const fraction = k % 100;
        this.#int32((k - fraction) / 100, 0);
        this.buf[this.length++] = 0x2e; // .
        if (fraction % 10 === 0) this.buf[this.length++] = 0x30 + fraction / 10;
        else this.#int32(fraction, 2);
        return;
      }
    }
    this.ascii(String(n));
  }

  /** Writes a non-negative int32 in decimal, zero-padded to at least `width` digits. */
  #int32(n: number, width: number): void {
    let digits = 1;
    for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
    if (digits < width) digits = width;
    const buf = this.buf;
    let p = this.length + digits;
    this.length = p;
    let x = n;
    for (let i = 0; i < digits; i++) {
      const q = (x / 10) | 0;
      buf[--p] = 0x30 + x - q * 10;
      x = q;
    }
  }

  /**
   * jsonString writes `s` as a JSON string, quotes included, byte for byte what
   * JSON.stringify(s) encoded as UTF-8 gives: `\"`, `\\`, `\b \f \n \r \t`, `\u00xx` for
   * other control characters, `\udxxx` for a lone surrogate, everything else as UTF-8.
   */
  jsonString(s: string): void {
    if (s.length >= NATIVE_FROM) {
      // Long strings (paths, user agents): JSON.stringify and the UTF-8 write are native and,
      // past a few dozen characters, cheaper than the loop below (bench/log-metrics.js).
      this.length += this.buf.write(JSON.stringify(s), this.length, 'utf8');
      return;
    }
    const buf = this.buf;
    let p = this.length;
    buf[p++] = QUOTE;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x80) {
        if (c === QUOTE || c === BACKSLASH) buf[p++] = BACKSLASH;
        buf[p++] = c;
      } else if (c < 0x20) {
        buf[p++] = BACKSLASH;
        if (c === 0x08) buf[p++] = 0x62; // b
        else if (c === 0x09) buf[p++] = 0x74; // t
        else if (c === 0x0a) buf[p++] = 0x6e; // n
        else if (c === 0x0c) buf[p++] = 0x66; // f
        else if (c === 0x0d) buf[p++] = 0x72; // r
        else {
          buf[p++] = 0x75; // u00xx
          buf[p++] = 0x30;
          buf[p++] = 0x30;
          buf[p++] = HEX.charCodeAt(c >> 4);
          buf[p++] = HEX.charCodeAt(c & 15);
        }
      } else if (c < 0x800) {
        buf[p++] = 0xc0 | (c >> 6);
        buf[p++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        p = utf8Three(buf, p, c);
      } else {
        const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          p = utf8Four(buf, p, 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00));
          i++;
        } else {
          // A lone surrogate: JSON.stringify writes it as an escape (well-formed JSON.stringify).
          buf[p++] = BACKSLASH;
          buf[p++] = 0x75;
          for (let shift = 12; shift >= 0; shift -= 4) buf[p++] = HEX.charCodeAt((c >> shift) & 15);
        }
      }
    }
    buf[p++] = QUOTE;
    this.length = p;
  }

  /**
   * apacheString writes `s` escaped as Apache's ap_escape_logitem: `"` and `\` get a
   * backslash, \b \n \r \t \v their C escapes, every other control or non-ASCII byte
   * `\xhh` (a character above 0xff: each byte of its UTF-8 encoding; header values arrive
   * as latin1, one byte per character). A lone surrogate is U+FFFD's bytes, as
   * Buffer.from(s, 'utf8') makes it.
   */
  apacheString(s: string): void {
    if (s.length >= NATIVE_FROM && !APACHE_ESCAPES.test(s)) {
      // Nothing to escape (the common case): one native write instead of the loop below.
      this.length += this.buf.write(s, this.length, 'latin1');
      return;
    }
    const buf = this.buf;
    let p = this.length;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x7f) {
        if (c === QUOTE || c === BACKSLASH) buf[p++] = BACKSLASH;
        buf[p++] = c;
      } else if (c === 0x08) p = escaped(buf, p, 0x62);
      else if (c === 0x0a) p = escaped(buf, p, 0x6e);
      else if (c === 0x0d) p = escaped(buf, p, 0x72);
      else if (c === 0x09) p = escaped(buf, p, 0x74);
      else if (c === 0x0b) p = escaped(buf, p, 0x76);
      else if (c <= 0xff) p = hexByte(buf, p, c);
      else {
        let code = c;
        if (c >= 0xd800 && c <= 0xdfff) {
          const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
            code = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
            i++;
          } else code = 0xfffd;
        }
        if (code < 0x800) {
          p = hexByte(buf, p, 0xc0 | (code >> 6));
          p = hexByte(buf, p, 0x80 | (code & 0x3f));
        } else if (code < 0x10000) {
          p = hexByte(buf, p, 0xe0 | (code >> 12));
          p = hexByte(buf, p, 0x80 | ((code >> 6) & 0x3f));
          p = hexByte(buf, p, 0x80 | (code & 0x3f));
        } else {
          p = hexByte(buf, p, 0xf0 | (code >> 18));
          p = hexByte(buf, p, 0x80 | ((code >> 12) & 0x3f));
          p = hexByte(buf, p, 0x80 | ((code >> 6) & 0x3f));
          p = hexByte(buf, p, 0x80 | (code & 0x3f));
        }
      }
    }
    this.length = p;
  }
}

function utf8Three(buf: Buffer, p: number, c: number): number {
  buf[p++] = 0xe0 | (c >> 12);
  buf[p++] = 0x80 | ((c >> 6) & 0x3f);
  buf[p++] = 0x80 | (c & 0x3f);
  return p;
}

function utf8Four(buf: Buffer, p: number, code: number): number {
  buf[p++] = 0xf0 | (code >> 18);
  buf[p++] = 0x80 | ((code >> 12) & 0x3f);
  buf[p++] = 0x80 | ((code >> 6) & 0x3f);
  buf[p++] = 0x80 | (code & 0x3f);
  return p;
}

function escaped(buf: Buffer, p: number, letter: number): number {
  buf[p++] = BACKSLASH;
  buf[p++] = letter;
  return p;
}

function hexByte(buf: Buffer, p: number, b: number): number {
  buf[p++] = BACKSLASH;
  buf[p++] = 0x78; // x
  buf[p++] = HEX.charCodeAt(b >> 4);
  buf[p++] = HEX.charCodeAt(b & 15);
  return p;
}
