/**
 * encodeHead writes a message head for the raw data plane's sockets: a start line, the
 * `name: value` lines of a header list, then fixed closing lines, as latin1 bytes in one
 * Buffer. Bytes rather than a string built with +=: such a string is a chain of cons
 * strings that the socket write first flattens and then converts again; a Buffer (from
 * Node's pool for small heads) is filled once and written as it is (bench/codec.js).
 *
 * Values must hold no CR or LF (the codecs guarantee it for what peers sent; the
 * balancer's own values never do). Characters are written as latin1, one byte each, as a
 * 'latin1' socket write does (a char code above 0xff keeps its low byte).
 */

/** From this length on a string is copied by one native call (a fixed cost) rather than a loop. */
const NATIVE_FROM = 24;

/**
 * encodeHead: `startLine` (its CRLF included), each header pair as `name: value` CRLF,
 * then `tail` (the closing lines, ending with the empty line's CRLF).
 */
export function encodeHead(startLine: string, headers: readonly string[], tail: string): Buffer {
  // Two bytes per string beyond its characters: `: ` after a name, CRLF after a value.
  let size = startLine.length + tail.length + 2 * headers.length;
  for (let i = 0; i < headers.length; i++) size += headers[i]!.length;
  const buf = Buffer.allocUnsafe(size);
  let p = put(buf, 0, startLine);
  for (let i = 0; i < headers.length; i += 2) {
    p = put(buf, p, headers[i]!);
    buf[p++] = 0x3a;
    buf[p++] = 0x20;
    p = put(buf, p, headers[i + 1]!);
    buf[p++] = 0x0d;
    buf[p++] = 0x0a;
  }
  put(buf, p, tail);
  return buf;
}

function put(buf: Buffer, p: number, s: string): number {
  const n = s.length;
  if (n >= NATIVE_FROM) return p + buf.write(s, p, n, 'latin1');
  for (let i = 0; i < n; i++) buf[p + i] = s.charCodeAt(i);
  return p + n;
}
