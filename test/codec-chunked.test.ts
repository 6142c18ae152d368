/**
 * The chunked-body decoder (src/proxy/codec/chunked.ts): accepted bodies decode to their
 * bytes and end where the last CRLF ends, whether fed whole, byte by byte or in random
 * splits; refused bodies fail with their reason, at the same byte however they are fed.
 */
import t from 'tap';
import { CHUNK_DATA, CHUNK_END, CHUNK_ERROR, CHUNK_NEED_MORE, ChunkedDecoder } from '../src/proxy/codec/chunked.js';
import { mulberry32 } from './fixtures/hostile-net.js';

interface Outcome {
  kind: 'end' | 'error' | 'more';
  body: string;
  /** end: offset after the body; error: the reason. */
  at: number | string;
}

/** Decodes `s` fed in the given piece sizes (the rest in one piece). */
function decode(s: string, pieces: number[] = []): Outcome {
  const b = Buffer.from(s, 'latin1');
  const d = new ChunkedDecoder();
  const body: Buffer[] = [];
  let p = 0;
  let cut = 0;
  for (const n of [...pieces, b.length]) {
    const end = Math.min(b.length, cut + n);
    cut = end;
    for (;;) {
      const ev = d.step(b, p, end);
      if (ev === CHUNK_DATA) {
        body.push(b.subarray(d.dataStart, d.dataEnd));
        p = d.pos;
        continue;
      }
      if (ev === CHUNK_END) return { kind: 'end', body: Buffer.concat(body).toString('latin1'), at: d.pos };
      if (ev === CHUNK_ERROR) return { kind: 'error', body: Buffer.concat(body).toString('latin1'), at: d.reason };
      if (ev !== CHUNK_NEED_MORE) throw new Error(`event ${ev}`);
      p = end;
      break;
    }
    if (cut === b.length) break;
  }
  return { kind: 'more', body: Buffer.concat(body).toString('latin1'), at: p };
}

const ACCEPTED: [string, string, string][] = [
  ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 'hello'],
  ['two chunks, upper-case hex', 'A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n', '0123456789!'],
  ['empty body', '0\r\n\r\n', ''],
  ['leading zeros', '0005\r\nhello\r\n000\r\n\r\n', 'hello'],
  ['16 hex digits', '0000000000000005\r\nhello\r\n0\r\n\r\n', 'hello'],
  ['extensions: name, token, quoted with escapes', '5;a;b=c;d="x \\"y\\" z"\r\nhello\r\n0;last\r\n\r\n', 'hello'],
  ['trailers', '5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Empty:\r\n\r\n', 'hello'],
  ['trailers that only look like framing names', '0\r\nContent-Lengths: 1\r\nContent-Lengt: 1\r\nTransfer-Encodin: x\r\nContent: 2\r\n\r\n', ''],
  ['CRLF inside the data is data', '4\r\n\r\n\r\n\r\n0\r\n\r\n', '\r\n\r\n'],
];

const REFUSED: [string, string, string][] = [
  ['no size', '\r\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['negative size', '-5\r\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['space after the size', '5 \r\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['17 hex digits', '00000000000000005\r\nhello\r\n0\r\n\r\n', 'chunk size too long'],
  ['size over 2^53', 'ffffffffffffffff\r\n', 'chunk size too large'],
  ['bare LF after the size', '5\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['bare CR after the size', '5\rhello\r\n0\r\n\r\n', 'bare CR after chunk size'],
  ['space before an extension', '5 ;a=b\r\nhello\r\n0\r\n\r\n', 'malformed chunk size'],
  ['space in an extension', '5;a =b\r\nhello\r\n0\r\n\r\n', 'malformed chunk extension'],
  ['empty extension name', '5;=b\r\nhello\r\n0\r\n\r\n', 'malformed chunk extension'],
  ['empty extension value', '5;a=\r\nhello\r\n0\r\n\r\n', 'malformed chunk extension'],
  ['NUL in a quoted extension', '5;a="\0"\r\nhello\r\n0\r\n\r\n', 'malformed chunk extension'],
  ['text after a quoted extension', '5;a="b"c\r\nhello\r\n0\r\n\r\n', 'malformed chunk extension'],
  ['data longer than its size', '5\r\nhelloXX\r\n0\r\n\r\n', 'chunk data not followed by CRLF'],
  ['bare LF after the data', '5\r\nhello\n0\r\n\r\n', 'chunk data not followed by CRLF'],
  ['trailer obs-fold', '0\r\nX: a\r\n b\r\n\r\n', 'malformed trailer'],
  ['trailer with space before the colon', '0\r\nX : a\r\n\r\n', 'malformed trailer'],
  ['NUL in a trailer value', '0\r\nX: a\0\r\n\r\n', 'malformed trailer'],
  ['bare LF in a trailer', '0\r\nX: a\n\r\n', 'malformed trailer'],
  ['bare LF at the end', '0\r\n\n', 'malformed trailer'],
  ['bare CR at the end', '0\r\n\rX', 'bare CR after last chunk'],
  ['Content-Length as a trailer', '5\r\nhello\r\n0\r\nContent-Length: 3\r\n\r\n', 'Content-Length or Transfer-Encoding as a trailer'],
  ['Transfer-Encoding as a trailer, any case', '0\r\ntRAnsfer-Encoding: chunked\r\n\r\n', 'Content-Length or Transfer-Encoding as a trailer'],
  ['too many trailers', `0\r\n${'X: y\r\n'.repeat(101)}\r\n`, 'too many trailers'],
];

t.test('accepted bodies, whole, byte by byte and in random splits', async (t) => {
  const rand = mulberry32(7);
  for (const [name, s, body] of ACCEPTED) {
    const whole = decode(s);
    t.same(whole, { kind: 'end', body, at: s.length }, name);
    t.same(decode(s, Array(s.length).fill(1)), whole, `${name}: byte by byte`);
    for (let i = 0; i < 20; i++) {
      t.same(decode(s, Array.from({ length: 4 }, () => Math.floor(rand() * 6))), whole, `${name}: random split`);
    }
  }
});

t.test('refused bodies, whole and byte by byte', async (t) => {
  for (const [name, s, reason] of REFUSED) {
    const whole = decode(s);
    t.match(whole, { kind: 'error', at: reason }, name);
    t.same(decode(s, Array(s.length).fill(1)), whole, `${name}: byte by byte`);
  }
});

t.test('the end offset leaves the next request alone; more bytes after the end are not read', async (t) => {
  const s = '3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n';
  t.same(decode(s), { kind: 'end', body: 'abc', at: 13 });
  t.same(decode(s.slice(0, 12)), { kind: 'more', body: 'abc', at: 12 });
});

t.test('a large chunk is reported in pieces as it arrives', async (t) => {
  const d = new ChunkedDecoder();
  const b = Buffer.from('100000\r\n', 'latin1');
  t.equal(d.step(b, 0, b.length), CHUNK_NEED_MORE);
  const data = Buffer.alloc(0x100000, 0x61);
  let got = 0;
  for (let off = 0; off < data.length; off += 65536) {
    t.equal(d.step(data, off, off + 65536), CHUNK_DATA);
    got += d.dataEnd - d.dataStart;
  }
  t.equal(got, 0x100000);
  t.equal(d.bodyBytes, 0x100000);
  const tail = Buffer.from('\r\n0\r\n\r\n');
  t.equal(d.step(tail, 0, tail.length), CHUNK_END);
  t.equal(d.pos, tail.length);
  t.equal(d.step(tail, 0, tail.length), CHUNK_END, 'stays ended');
});

t.test('extensions and trailers have a size limit', async (t) => {
  t.match(decode(`5;a="${'x'.repeat(5000)}"\r\nhello\r\n0\r\n\r\n`), { kind: 'error', at: 'chunk extensions too long' });
  t.match(decode(`0\r\nX: ${'x'.repeat(17000)}\r\n\r\n`), { kind: 'error', at: 'trailers too large' });
  const d = new ChunkedDecoder();
  d.step(Buffer.from('z'), 0, 1);
  t.equal(d.step(Buffer.from('0\r\n\r\n'), 0, 5), CHUNK_ERROR, 'stays failed');
});
