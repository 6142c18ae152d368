/**
 * The backend's answer to a WebSocket handshake, read from raw bytes (pure, no I/O): is it
 * a switch to WebSocket, a refusal to relay (and how long its body is), or something the
 * balancer must not relay at all?
 *
 * The head is parsed by the strict response codec (src/proxy/codec/response-head.ts), the
 * same one every proxied response on the raw data plane goes through, so a handshake answer
 * is held to the same rules (one Content-Length, exactly `chunked`, no framing on a 1xx, no
 * bare CR or LF, no obs-fold); this file only classifies what it accepted.
 *
 * The rule it serves: nothing a client sends reaches a backend unparsed, except inside a
 * WebSocket the backend accepted. A tunnel opens only on `101` with `Upgrade: websocket`;
 * any other final answer is relayed with `Connection: close` and the client connection
 * ends after it, so the bytes a client sends after its upgrade request are never piped to a
 * backend that did not switch protocols (and never parsed as a second request either: the
 * request parser has handed the socket over by then).
 */
import { parseResponseHead } from './codec/response-head.js';

/** HandshakeAnswer is what a backend answered, or why it cannot be relayed, or that more bytes are needed. */
export type HandshakeAnswer =
  | { readonly kind: 'incomplete' }
  | {
      readonly kind: 'switch';
      /** The head as received, to relay as it is (plus the caller's headers), without its final CRLF CRLF. */
      readonly head: string;
      /** Offset just after the head: what follows is the backend's first WebSocket bytes. */
      readonly headEnd: number;
    }
  | {
      readonly kind: 'refusal';
      readonly status: number;
      /** The status line and the headers to relay (connection headers removed), without a final CRLF. */
      readonly head: string;
      /** Offset just after the head: what follows is the start of the body. */
      readonly headEnd: number;
      readonly body: RefusalBody;
    }
  | { readonly kind: 'invalid'; readonly why: 'not-http' | 'not-websocket' };

/** How much of a refusal's body follows its head: a byte count, or all until the backend closes. */
export type RefusalBody = number | 'until-close';

/** Response headers that describe the backend connection, replaced by `connection: close` on a refusal. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection']);

const INCOMPLETE: HandshakeAnswer = Object.freeze({ kind: 'incomplete' });

/**
 * readHandshakeAnswer classifies the answer head at the start of `buf` (call again with more
 * bytes after `incomplete`). A head the codec refuses, or one of `maxHeaderBytes` or more,
 * is 'not-http': its bytes could reach the client as headers of their own (response
 * splitting), or its body length is ambiguous. A 1xx other than 101, or a 101 without
 * `Upgrade: websocket`, is 'not-websocket'. A refusal's chunked body is relayed as it is,
 * until the backend closes.
 */
export function readHandshakeAnswer(buf: Buffer, maxHeaderBytes: number): HandshakeAnswer {
  const parsed = parseResponseHead(buf, 0, maxHeaderBytes, false);
  if (parsed.kind === 'incomplete') return INCOMPLETE;
  if (parsed.kind === 'error') return { kind: 'invalid', why: 'not-http' };
  const { status, headers, headEnd } = parsed;
  if (parsed.upgrade) {
    let websocket = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() === 'upgrade' && headers[i + 1]!.split(',').some((token) => token.trim().toLowerCase() === 'websocket')) websocket = true;
    }
    return websocket ? { kind: 'switch', head: buf.toString('latin1', 0, headEnd - 4), headEnd } : { kind: 'invalid', why: 'not-websocket' };
  }
  if (parsed.interim) return { kind: 'invalid', why: 'not-websocket' };
  let head = buf.toString('latin1', 0, buf.indexOf('\r\n'));
  for (let i = 0; i < headers.length; i += 2) {
    if (!CONNECTION_HEADERS.has(headers[i]!.toLowerCase())) head += `\r\n${headers[i]}: ${headers[i + 1]}`;
  }
  const body: RefusalBody = parsed.body.kind === 'none' ? 0 : parsed.body.kind === 'length' ? parsed.body.length : 'until-close';
  return { kind: 'refusal', status, head, headEnd, body };
}
