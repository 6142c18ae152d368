/**
 * Byte classes shared by the HTTP/1.1 codec (request heads and chunked bodies).
 *
 * Lookup tables, built once at load: the hot path tests a byte with one array read
 * instead of a chain of comparisons.
 */

/** RFC 9110 tchar: the bytes allowed in a method, a header name, a chunk-extension name or token value. */
export const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let b = 0x30; b <= 0x39; b++) TOKEN[b] = 1;
for (let b = 0x41; b <= 0x5a; b++) TOKEN[b] = 1;
for (let b = 0x61; b <= 0x7a; b++) TOKEN[b] = 1;

/** field-vchar, SP and HTAB: what a header value may hold (obs-text 0x80-0xFF included, DEL not). */
export const VALUE = new Uint8Array(256);
VALUE[0x09] = 1;
for (let b = 0x20; b <= 0x7e; b++) VALUE[b] = 1;
for (let b = 0x80; b <= 0xff; b++) VALUE[b] = 1;

/** Hex digit values, -1 for anything else: chunk sizes. */
export const HEX = new Int8Array(256).fill(-1);
for (let b = 0; b < 10; b++) HEX[0x30 + b] = b;
for (let b = 0; b < 6; b++) {
  HEX[0x41 + b] = 10 + b;
  HEX[0x61 + b] = 10 + b;
}

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
