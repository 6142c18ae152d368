/**
 * listen.healthPath: the balancer's own health answer on the traffic port, for a cloud
 * load balancer that cannot reach the admin port. It is answered here and never
 * forwarded, before path rules and routing; the body is the admin API's /healthz body
 * (src/pool/readiness.ts), judged on this process's pool (a worker's mirror of the
 * primary's). While the balancer shuts down it answers 503, so the upstream stops sending.
 */
import type { PoolSnapshot } from '../pool/snapshot.js';
import { readiness, type StateHealth } from '../pool/readiness.js';

/** isHealthPath is true when the request's path (query ignored) is exactly healthPath. */
export function isHealthPath(url: string | undefined, healthPath: string | undefined): boolean {
  if (healthPath === undefined || url === undefined) return false;
  const query = url.indexOf('?');
  return (query < 0 ? url : url.slice(0, query)) === healthPath;
}

/** HealthAnswer is the health path's answer, for the listener to write. */
export interface HealthAnswer {
  readonly status: number;
  /** The answer's headers, Content-Length included. */
  readonly headers: Record<string, string | number>;
  readonly text: string;
}

/** healthAnswer judges the health: GET and HEAD only (others 405), never cached. */
export function healthAnswer(method: string | undefined, snapshot: PoolSnapshot, state: StateHealth, closing: boolean): HealthAnswer {
  const headers: Record<string, string | number> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-type': 'application/json; charset=utf-8' };
  let status: number;
  let body: object;
  if (method !== 'GET' && method !== 'HEAD') {
    status = 405;
    body = { ok: false, reason: `${method ?? 'this method'} is not allowed on the health path (use GET or HEAD)` };
    headers.allow = 'GET, HEAD';
  } else {
    const report = readiness(snapshot.backends.map((b) => b.state), state);
    body = closing ? { ...report, ok: false, reason: 'the balancer is shutting down' } : report;
    status = (body as { ok: boolean }).ok ? 200 : 503;
  }
  const text = `${JSON.stringify(body)}\n`;
  headers['content-length'] = Buffer.byteLength(text);
  return { status, headers, text };
}
