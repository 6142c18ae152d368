/**
 * The backend's answer to a WebSocket handshake, read from raw bytes (pure, no I/O): is it
 * a switch to WebSocket, a refusal to relay (and how long its body is), or something the
 * balancer must not relay at all?
 *
 * The rule it serves: nothing a client sends reaches a backend unparsed, except inside a
 * WebSocket the backend accepted. A tunnel opens only on `101` with `Upgrade: websocket`;
 * any other final answer is relayed with `Connection: close` and the client connection
 * ends after it, so the bytes a client sends after its upgrade request are never piped to a
 * backend that did not switch protocols (and never parsed as a second request either: the
 * request parser has handed the socket over by then).
 */

/** HandshakeAnswer is what a backend answered, or why it cannot be relayed. */
export type HandshakeAnswer =
  | { readonly kind: 'switch' }
  | {
      readonly kind: 'refusal';
      readonly status: number;
      /** The status line and the headers to relay (connection headers removed), without a final CRLF. */
      readonly head: string;
      readonly body: RefusalBody;
    }
  | { readonly kind: 'invalid'; readonly why: 'not-http' | 'not-websocket' };

/** How much of a refusal's body follows its head: a byte count, or all until the backend closes. */
export type RefusalBody = number | 'until-close';

/** One header line: a token, a colon, then no CR, LF, NUL or other control character but tab. */
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*([^\x00-\x08\x0a-\x1f\x7f]*?)[\t ]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;

/** Response headers that describe the backend connection, replaced by `connection: close` on a refusal. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection']);

/**
 * readHandshakeAnswer classifies a backend's answer head (status line and header lines,
 * without the final CRLF CRLF). A switch's head is relayed by the caller as received; a
 * refusal's is relayed as `head` plus the caller's own headers and `connection: close`.
 *
 * A bare CR or LF, a NUL or an obs-fold line would reach the client as a header of its own
 * (response splitting), so such a head is 'not-http'; so is a refusal whose body length is
 * ambiguous (two Content-Lengths that differ, one that is not a number, or Content-Length
 * with Transfer-Encoding). A 1xx other than 101, or a 101 without `Upgrade: websocket`,
 * is 'not-websocket'.
 */
export function readHandshakeAnswer(headText: string): HandshakeAnswer {
  const lines = headText.split('\r\n');
  const statusMatch = STATUS_LINE.exec(lines[0]!);
  if (statusMatch === null) return { kind: 'invalid', why: 'not-http' };
  const status = Number(statusMatch[1]);
  let upgrade: string | undefined;
  let contentLength: string | undefined;
  let chunked = false;
  let out = lines[0]!;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const m = HEADER_LINE.exec(line);
    if (m === null) return { kind: 'invalid', why: 'not-http' };
    const name = m[1]!.toLowerCase();
    const value = m[2]!;
    if (name === 'upgrade') upgrade = upgrade === undefined ? value : `${upgrade},${value}`;
    else if (name === 'transfer-encoding') chunked = true;
    else if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (contentLength !== undefined && contentLength !== value)) return { kind: 'invalid', why: 'not-http' };
      contentLength = value;
    }
    if (!CONNECTION_HEADERS.has(name)) out += `\r\n${line}`;
  }
  if (status === 101) {
    const websocket = upgrade !== undefined && upgrade.split(',').some((token) => token.trim().toLowerCase() === 'websocket');
    return websocket ? { kind: 'switch' } : { kind: 'invalid', why: 'not-websocket' };
  }
  if (status < 200) return { kind: 'invalid', why: 'not-websocket' };
  if (chunked && contentLength !== undefined) return { kind: 'invalid', why: 'not-http' };
  const body: RefusalBody = status === 204 || status === 304 ? 0 : contentLength !== undefined ? Number(contentLength) : 'until-close';
  return { kind: 'refusal', status, head: out, body };
}
