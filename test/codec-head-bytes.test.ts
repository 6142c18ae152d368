/**
 * encodeHead (src/proxy/codec/head-bytes.ts): a head written as bytes is exactly the
 * latin1 encoding of the same head written as a string, for short strings (the loop) and
 * long ones (the native copy), high latin1 characters and char codes past 0xff alike.
 */
import t from 'tap';
import { encodeHead } from '../src/proxy/codec/head-bytes.js';

/** The head as the string it replaced, encoded as a 'latin1' socket write encodes it. */
function asString(startLine: string, headers: readonly string[], tail: string): Buffer {
  let head = startLine;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return Buffer.from(head + tail, 'latin1');
}

const long = `JSESSIONID=${'0123456789abcdef'.repeat(8)}; servoy-lb=abc`;
const cases: [string, string, string[], string][] = [
  ['no headers', 'GET / HTTP/1.1\r\n', [], '\r\n'],
  ['short headers', 'GET /a?b=c HTTP/1.1\r\n', ['host', 'x', 'X-A', '1'], '\r\n'],
  ['a long value and a long name', 'POST /p HTTP/1.1\r\n', ['cookie', long, 'x-a-rather-long-header-name-here', 'v'], '\r\n'],
  ['empty value', 'HTTP/1.1 200 OK\r\n', ['x-empty', ''], 'Connection: close\r\n\r\n'],
  ['high latin1 characters, short and long', 'HTTP/1.1 200 OK\r\n', ['x-l', 'caf\u00e9', 'x-long', `\u00ff${'\u00e9'.repeat(40)}`], '\r\n'],
  ['char codes past 0xff keep their low byte', 'HTTP/1.1 200 OK\r\n', ['x-u', '\u20ac', 'x-long-u', '\u20ac'.repeat(30)], '\r\n'],
];

for (const [name, startLine, headers, tail] of cases) {
  t.same(encodeHead(startLine, headers, tail), asString(startLine, headers, tail), name);
}
