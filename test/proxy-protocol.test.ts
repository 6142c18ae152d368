/**
 * The PROXY protocol parser (listen.proxyProtocol), without sockets: tables of valid v1
 * and v2 headers with what they carry, every strict prefix of each answered 'need-more'
 * (and never an error), and tables of invalid ones (bad signatures, versions, commands,
 * families, length lies, TLVs that overrun, over-long or malformed v1 lines) answered
 * 'error', also when more bytes follow.
 */
import t from 'tap';
import { ipv6, parseProxyHeader, V1_MAX_BYTES, V2_SIGNATURE } from '../src/proxy/proxy-protocol.js';
import { startsLikeHeader } from '../src/proxy/proxy-protocol-gate.js';

const HTTP = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1');

function v1(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

/** A v2 header: version/command byte, family/transport byte, then the body (length from it unless given). */
function v2(versionCommand: number, familyTransport: number, body: number[] | Buffer, length?: number): Buffer {
  const b = Buffer.from(body);
  const len = length ?? b.length;
  return Buffer.concat([V2_SIGNATURE, Buffer.from([versionCommand, familyTransport, len >> 8, len & 0xff]), b]);
}

const INET_BODY = [192, 0, 2, 1, 198, 51, 100, 7, 0xc3, 0x50, 0x01, 0xbb]; // 192.0.2.1:50000 -> 198.51.100.7:443
const INET6_BODY = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // 2001:db8::1
  ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5], // ::ffff:10.0.0.5
  0x04, 0xd2, 0x00, 0x50,
];
const tlv = (type: number, value: number[]): number[] => [type, value.length >> 8, value.length & 0xff, ...value];

interface Valid {
  name: string;
  header: Buffer;
  want: { kind: 'proxied' | 'local'; version: 1 | 2; source?: string; sourcePort?: number; destination?: string; destinationPort?: number };
}

const VALID: Valid[] = [
  { name: 'v1 TCP4', header: v1('PROXY TCP4 192.0.2.1 198.51.100.7 50000 443\r\n'), want: { kind: 'proxied', version: 1, source: '192.0.2.1', sourcePort: 50000, destination: '198.51.100.7', destinationPort: 443 } },
  { name: 'v1 TCP6', header: v1('PROXY TCP6 2001:db8::1 ::1 65535 0\r\n'), want: { kind: 'proxied', version: 1, source: '2001:db8::1', sourcePort: 65535, destination: '::1', destinationPort: 0 } },
  { name: 'v1 UNKNOWN', header: v1('PROXY UNKNOWN\r\n'), want: { kind: 'local', version: 1 } },
  { name: 'v1 UNKNOWN with addresses', header: v1('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'), want: { kind: 'local', version: 1 } },
  {
    name: 'v1 at the 107-byte limit',
    header: v1(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_BYTES - 'PROXY UNKNOWN \r\n'.length)}\r\n`),
    want: { kind: 'local', version: 1 },
  },
  { name: 'v2 PROXY INET', header: v2(0x21, 0x11, INET_BODY), want: { kind: 'proxied', version: 2, source: '192.0.2.1', sourcePort: 50000, destination: '198.51.100.7', destinationPort: 443 } },
  { name: 'v2 PROXY INET6', header: v2(0x21, 0x21, INET6_BODY), want: { kind: 'proxied', version: 2, source: '2001:db8::1', sourcePort: 1234, destination: '::ffff:10.0.0.5', destinationPort: 80 } },
  { name: 'v2 PROXY INET with TLVs (AWS VPC endpoint, NOOP)', header: v2(0x21, 0x11, [...INET_BODY, ...tlv(0xea, [1, 0x76, 0x70, 0x63]), ...tlv(0x04, [])]), want: { kind: 'proxied', version: 2, source: '192.0.2.1', sourcePort: 50000 } },
  { name: 'v2 LOCAL, no addresses', header: v2(0x20, 0x00, []), want: { kind: 'local', version: 2 } },
  { name: 'v2 LOCAL with an address block (ignored)', header: v2(0x20, 0x11, INET_BODY), want: { kind: 'local', version: 2 } },
  { name: 'v2 PROXY UNSPEC', header: v2(0x21, 0x00, []), want: { kind: 'local', version: 2 } },
  { name: 'v2 PROXY UNIX', header: v2(0x21, 0x31, new Array<number>(216).fill(0x61)), want: { kind: 'local', version: 2 } },
];

t.test('valid headers: what they carry and their length, with or without the request after them', async (t) => {
  for (const { name, header, want } of VALID) {
    for (const bytes of [header, Buffer.concat([header, HTTP])]) {
      const got = parseProxyHeader(bytes);
      t.equal(got.kind, want.kind, name);
      if (got.kind !== 'proxied' && got.kind !== 'local') continue;
      t.equal(got.length, header.length, `${name}: length`);
      t.equal(got.version, want.version, `${name}: version`);
      if (got.kind === 'proxied') {
        t.equal(got.source.address, want.source, `${name}: source`);
        t.equal(got.source.port, want.sourcePort, `${name}: source port`);
        if (want.destination !== undefined) t.same(got.destination, { address: want.destination, port: want.destinationPort }, `${name}: destination`);
      }
    }
  }
});

t.test('every strict prefix of a valid header needs more bytes (truncated at every byte boundary)', async (t) => {
  for (const { name, header } of VALID) {
    const wrong: number[] = [];
    for (let n = 0; n < header.length; n++) if (parseProxyHeader(header.subarray(0, n)).kind !== 'need-more') wrong.push(n);
    t.same(wrong, [], `${name}: ${header.length} prefixes`);
  }
});

const INVALID: [string, Buffer][] = [
  ['HTTP instead of a header', HTTP],
  ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5])],
  ['lowercase proxy', v1('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n')],
  ['PROXY without its space', v1('PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 LF only', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')],
  ['v1 CR then not LF', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX')],
  ['v1 two spaces', v1('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 trailing space', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n')],
  ['v1 a tab', v1('PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 missing port', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n')],
  ['v1 unknown protocol', v1('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 lowercase tcp4', v1('PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 TCP4 with an IPv6 address', v1('PROXY TCP4 ::1 5.6.7.8 1 2\r\n')],
  ['v1 TCP6 with an IPv4 address', v1('PROXY TCP6 1.2.3.4 ::1 1 2\r\n')],
  ['v1 octet over 255', v1('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n')],
  ['v1 octet with a leading zero', v1('PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n')],
  ['v1 a host name', v1('PROXY TCP4 example.com 5.6.7.8 1 2\r\n')],
  ['v1 port over 65535', v1('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')],
  ['v1 port with a leading zero', v1('PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n')],
  ['v1 port with a sign', v1('PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n')],
  ['v1 port in hex', v1('PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n')],
  ['v1 NUL inside', v1('PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n')],
  ['v1 a high byte inside', v1('PROXY UNKNOWN \xff\r\n')],
  ['v1 no CRLF within 107 bytes', v1(`PROXY UNKNOWN ${'x'.repeat(120)}`)],
  ['v1 CRLF one byte past the limit', v1(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_BYTES - 'PROXY UNKNOWN \r\n'.length + 1)}\r\n`)],
  ['v2 signature with one byte wrong', Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x55, 0x0a]), Buffer.from([0x21, 0x11, 0, 12]), Buffer.from(INET_BODY)])],
  ['v2 signature cut and followed by other bytes', Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x41])],
  ['v2 version 1', v2(0x11, 0x11, INET_BODY)],
  ['v2 version 3', v2(0x31, 0x11, INET_BODY)],
  ['v2 command 2', v2(0x22, 0x11, INET_BODY)],
  ['v2 command 15', v2(0x2f, 0x11, INET_BODY)],
  ['v2 family 4', v2(0x21, 0x41, INET_BODY)],
  ['v2 transport 3', v2(0x21, 0x13, INET_BODY)],
  ['v2 PROXY over DGRAM', v2(0x21, 0x12, INET_BODY)],
  ['v2 PROXY INET with UNSPEC transport', v2(0x21, 0x10, INET_BODY)],
  ['v2 PROXY UNSPEC family with STREAM', v2(0x21, 0x01, [])],
  ['v2 length shorter than the INET block', v2(0x21, 0x11, INET_BODY.slice(0, 11))],
  ['v2 length shorter than the INET6 block', v2(0x21, 0x21, INET_BODY)],
  ['v2 INET length 0', v2(0x21, 0x11, [])],
  ['v2 a truncated TLV header', v2(0x21, 0x11, [...INET_BODY, 0x04, 0x00])],
  ['v2 a TLV longer than the header (length lie)', v2(0x21, 0x11, [...INET_BODY, 0x04, 0x00, 0x09, 1, 2, 3])],
  ['v2 a TLV claiming 64 KiB', v2(0x21, 0x11, [...INET_BODY, 0x04, 0xff, 0xff])],
];

t.test('invalid headers are errors, with a reason, also when followed by more bytes', async (t) => {
  for (const [name, bytes] of INVALID) {
    for (const input of [bytes, Buffer.concat([bytes, HTTP])]) {
      const got = parseProxyHeader(input);
      t.equal(got.kind, 'error', name);
      if (got.kind === 'error') t.ok(got.reason.length > 0);
    }
  }
});

t.test('invalid headers are errors no later than their complete bytes: no prefix is taken for a header', async (t) => {
  for (const [name, bytes] of INVALID) {
    const early = [];
    for (let n = 1; n <= bytes.length; n++) {
      const kind = parseProxyHeader(bytes.subarray(0, n)).kind;
      if (kind === 'proxied' || kind === 'local') early.push(n);
    }
    t.same(early, [], name);
  }
});

t.test('a v2 header whose length lies longer than what arrived waits for the rest', async (t) => {
  t.equal(parseProxyHeader(v2(0x21, 0x11, INET_BODY, 40)).kind, 'need-more', 'claims 40, has 12: more may come');
  t.equal(parseProxyHeader(Buffer.alloc(0)).kind, 'need-more');
});

t.test('ipv6: RFC 5952 text', async (t) => {
  const table: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], '2001:db8:0:1:1:1:1:1'],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], '2001:db8::'],
    [[0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a], 'fe80::1ff:fe23:4567:890a'],
    [[0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201], '::ffff:192.0.2.1'],
  ];
  for (const [groups, text] of table) {
    const bytes = Buffer.alloc(16);
    groups.forEach((g, i) => bytes.writeUInt16BE(g, 2 * i));
    t.equal(ipv6(bytes, 0), text);
  }
});

t.test('startsLikeHeader: what closes a connection from a peer not in trustedProxies', async (t) => {
  const table: [string, Buffer, 'yes' | 'no' | 'need-more'][] = [
    ['v1 start', v1('PROXY '), 'yes'],
    ['a whole v1 header', v1('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'yes'],
    ['v1 cut short', v1('PROX'), 'need-more'],
    ['POST', v1('POST / HTTP/1.1\r\n'), 'no'],
    ['PUT', v1('PUT'), 'no'],
    ['P alone', v1('P'), 'need-more'],
    ['v2 signature', V2_SIGNATURE, 'yes'],
    ['v2 signature cut short', V2_SIGNATURE.subarray(0, 5), 'need-more'],
    ['CRLF then other bytes', Buffer.from([0x0d, 0x0a, 0x47]), 'no'],
    ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01]), 'no'],
    ['nothing yet', Buffer.alloc(0), 'need-more'],
  ];
  for (const [name, bytes, want] of table) t.equal(startsLikeHeader(bytes), want, name);
});
