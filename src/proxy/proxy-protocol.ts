/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), parsed
 * strictly and without I/O: `listen.proxyProtocol` lets an upstream balancer (a cloud
 * network load balancer, HAProxy) that forwards TCP tell us whose connection it is. The
 * parser is given the bytes received so far and answers either the header (its length, and
 * the addresses it carries), or that it needs more bytes, or why the bytes are not a valid
 * header. Anything but an exact header is an error, never a guess: it decides the client
 * address that routing, path rules and the access log use.
 *
 * - v1: `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n`, or `PROXY UNKNOWN ...\r\n`;
 *   at most 107 bytes; single spaces; addresses of the named family; ports 0-65535 in
 *   decimal without leading zeros.
 * - v2: the 12-byte signature, version 2 with command LOCAL or PROXY, family
 *   UNSPEC/INET/INET6/UNIX over STREAM (or UNSPEC), a length that covers the address block
 *   of the family, and TLVs after it that are skipped but must tile the rest exactly.
 *
 * LOCAL (v2), UNKNOWN (v1), and PROXY over UNSPEC or UNIX carry no client address of use to
 * us: the connection's own peer address stays the client's (kind 'local').
 */
import { isIPv4, isIPv6 } from 'node:net';

/** An address and port a PROXY header carries. */
export interface ProxiedEndpoint {
  readonly address: string;
  readonly port: number;
}

/** ProxyParse is what parseProxyHeader answers; see the file comment. */
export type ProxyParse =
  | { readonly kind: 'proxied'; readonly version: 1 | 2; readonly length: number; readonly source: ProxiedEndpoint; readonly destination: ProxiedEndpoint }
  | { readonly kind: 'local'; readonly version: 1 | 2; readonly length: number }
  | { readonly kind: 'need-more' }
  | { readonly kind: 'error'; readonly reason: string };

/** The longest v1 header, CRLF included (proxy-protocol.txt 2.1). */
export const V1_MAX_BYTES = 107;
/** The v2 signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Bytes of the v2 fixed part: signature, version/command, family/transport, length. */
const V2_FIXED = 16;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

const NEED_MORE: ProxyParse = { kind: 'need-more' };

function error(reason: string): ProxyParse {
  return { kind: 'error', reason };
}

/**
 * parseProxyHeader parses the PROXY header at the start of `bytes` (everything received so
 * far on the connection). 'need-more' only while `bytes` is a strict prefix of what could
 * still become a valid header.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  if (bytes.length === 0) return NEED_MORE;
  if (bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  return error('not a PROXY protocol header');
}

// ---- v1 --------------------------------------------------------------------------------------

function parseV1(bytes: Uint8Array): ProxyParse {
  const prefix = Math.min(bytes.length, V1_PREFIX.length);
  for (let i = 0; i < prefix; i++) if (bytes[i] !== V1_PREFIX[i]) return error('not a PROXY protocol header');
  // CR may be at index V1_MAX_BYTES - 2 at the latest, so that CRLF ends within the limit.
  const crLimit = V1_MAX_BYTES - 1;
  const limit = Math.min(bytes.length, crLimit);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = bytes[i]!;
    if (c === 0x0d) {
      cr = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return error('v1: a byte that is not printable ASCII');
  }
  if (cr === -1) return bytes.length >= crLimit ? error(`v1: no CRLF within ${V1_MAX_BYTES} bytes`) : NEED_MORE;
  if (cr + 1 >= bytes.length) return NEED_MORE;
  if (bytes[cr + 1] !== 0x0a) return error('v1: CR not followed by LF');
  const length = cr + 2;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset + V1_PREFIX.length, cr - V1_PREFIX.length).toString('latin1');
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return { kind: 'local', version: 1, length };
  const parts = line.split(' ');
  if (parts.length !== 5) return error('v1: expected "TCP4|TCP6 <source> <destination> <source port> <destination port>" with single spaces');
  const [protocol, src, dst, srcPort, dstPort] = parts as [string, string, string, string, string];
  const valid = protocol === 'TCP4' ? isIPv4 : protocol === 'TCP6' ? isIPv6 : undefined;
  if (valid === undefined) return error(`v1: unknown protocol "${protocol}"`);
  if (!valid(src) || !valid(dst)) return error(`v1: an address that is not ${protocol === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const sp = portNumber(srcPort);
  const dp = portNumber(dstPort);
  if (sp === undefined || dp === undefined) return error('v1: a port that is not a number from 0 to 65535 without leading zeros');
  return { kind: 'proxied', version: 1, length, source: { address: src, port: sp }, destination: { address: dst, port: dp } };
}

function portNumber(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

// ---- v2 --------------------------------------------------------------------------------------

/** Address block sizes per family nibble: UNSPEC, INET, INET6, UNIX. */
const ADDRESS_BYTES = [0, 12, 36, 216];

function parseV2(bytes: Uint8Array): ProxyParse {
  const signature = Math.min(bytes.length, V2_SIGNATURE.length);
  for (let i = 0; i < signature; i++) if (bytes[i] !== V2_SIGNATURE[i]) return error('not a PROXY protocol header');
  if (bytes.length < V2_FIXED) return checkV2Prefix(bytes);
  const versionCommand = bytes[12]!;
  const familyTransport = bytes[13]!;
  const problem = v2FixedProblem(versionCommand, familyTransport);
  if (problem !== undefined) return error(problem);
  const rest = (bytes[14]! << 8) | bytes[15]!;
  const family = familyTransport >> 4;
  const local = (versionCommand & 0x0f) === 0x0;
  const addressBytes = ADDRESS_BYTES[family]!;
  if (!local && rest < addressBytes) return error(`v2: length ${rest} is shorter than the ${addressBytes}-byte address block of its family`);
  const length = V2_FIXED + rest;
  if (bytes.length < length) return NEED_MORE;
  // LOCAL: the address block may be anything (or nothing); the whole length is skipped.
  if (local) return { kind: 'local', version: 2, length };
  const tlvProblem = tlvsProblem(bytes, V2_FIXED + addressBytes, length);
  if (tlvProblem !== undefined) return error(tlvProblem);
  if (family === 1) {
    return { kind: 'proxied', version: 2, length, source: { address: ipv4(bytes, 16), port: port(bytes, 24) }, destination: { address: ipv4(bytes, 20), port: port(bytes, 26) } };
  }
  if (family === 2) {
    return { kind: 'proxied', version: 2, length, source: { address: ipv6(bytes, 16), port: port(bytes, 48) }, destination: { address: ipv6(bytes, 32), port: port(bytes, 50) } };
  }
  return { kind: 'local', version: 2, length }; // UNSPEC or UNIX: no address of use
}

/** With fewer than 16 bytes: an error as soon as the version or family byte is wrong, else need-more. */
function checkV2Prefix(bytes: Uint8Array): ProxyParse {
  if (bytes.length > 12) {
    const problem = v2FixedProblem(bytes[12]!, bytes.length > 13 ? bytes[13]! : 0x00);
    if (problem !== undefined) return error(problem);
  }
  return NEED_MORE;
}

function v2FixedProblem(versionCommand: number, familyTransport: number): string | undefined {
  if (versionCommand >> 4 !== 2) return `v2: version ${versionCommand >> 4}, not 2`;
  const command = versionCommand & 0x0f;
  if (command > 1) return `v2: command ${command}, neither LOCAL nor PROXY`;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > 3) return `v2: address family ${family} is not defined`;
  if (transport > 2) return `v2: transport ${transport} is not defined`;
  if (command === 1 && transport === 2) return 'v2: a datagram (UDP) connection cannot carry HTTP';
  if (command === 1 && (transport === 0) !== (family === 0)) return 'v2: family and transport disagree (UNSPEC with the other set)';
  return undefined;
}

/** TLVs (type, 2-byte length, value) must tile [from, to) exactly. */
function tlvsProblem(bytes: Uint8Array, from: number, to: number): string | undefined {
  let at = from;
  while (at < to) {
    if (to - at < 3) return 'v2: a truncated TLV header';
    const valueLength = (bytes[at + 1]! << 8) | bytes[at + 2]!;
    at += 3 + valueLength;
    if (at > to) return 'v2: a TLV longer than the header';
  }
  return undefined;
}

function port(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

function ipv4(bytes: Uint8Array, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

/** An IPv6 address in RFC 5952 text (longest zero run as ::), IPv4-mapped as ::ffff:a.b.c.d as Node shows peers. */
export function ipv6(bytes: Uint8Array, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[at + 2 * i]! << 8) | bytes[at + 2 * i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(bytes, at + 12)}`;
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
