/**
 * X-Request-Id: one id per request, passed to the backend and written in the access log,
 * so a line in the balancer's log and one in a Servoy server's log can be matched. A
 * trusted proxy's id is kept (the id then spans the whole chain); anyone else's is replaced,
 * so a client cannot forge ids that collide with real ones in the logs.
 *
 * Generated ids are a per-process random prefix and a counter: unique across processes and
 * restarts (the prefix) and nearly free per request (no randomness on the hot path).
 */
import { randomBytes } from 'node:crypto';

/** The longest id kept from a trusted proxy; a longer one is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** RFC 9110 token characters only: nothing that needs quoting or escaping in a log line. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const PREFIX = randomBytes(6).toString('base64url');
let counter = 0;

/** nextRequestId generates a new id: `<random prefix of this process>-<counter in base 36>`. */
export function nextRequestId(): string {
  counter++;
  return `${PREFIX}-${counter.toString(36)}`;
}

/** acceptableRequestId is true for an id that may be passed on as it is (bounded, token characters). */
export function acceptableRequestId(value: string): boolean {
  return value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH && TOKEN.test(value);
}
