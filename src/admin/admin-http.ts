/**
 * The admin server's HTTP plumbing on node:http, kept apart from what the calls mean
 * (admin-routes.ts) and from who may make them (admin-server.ts): route matching on path
 * segments, the bounded JSON body reader, the same-origin check for state changes, the
 * bearer token and the dashboard cookie, and writing an answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { AdminError } from './control.js';

/** The logging the admin server needs; a pino Logger fits. */
export type AdminLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

/** The largest request body the admin API reads (the biggest real one is a few hundred bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

/** Name of the dashboard's sign-in cookie (it holds a session id, see dashboard-sessions.ts). */
export const ADMIN_COOKIE = 'servoylb_admin';

/** Method is an HTTP method the admin server routes (HEAD is answered by the GET route). */
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Reply is what a route answers: JSON, or a body with its own content type. */
export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string | Buffer; contentType: string; headers?: Record<string, string> };

/** Call is one request as a route sees it. */
export interface Call {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The parsed JSON body; undefined when there is none. */
  body(): Promise<unknown>;
}

/** Route is one method and path of the admin server. */
export interface Route {
  readonly method: Method;
  /** Segments; ":name" captures one (percent-decoded) segment. */
  readonly path: readonly string[];
  /** false for /healthz, the dashboard's files and login/logout. */
  readonly auth: boolean;
  handle(call: Call): Promise<Reply> | Reply;
}

/** route builds a Route from a path written as "/api/backends/:id". */
export function route(method: Method, path: string, handle: Route['handle'], auth = true): Route {
  return { method, path: path.split('/').filter(Boolean), auth, handle };
}

const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/** sha256 of a text, for constant-time comparisons of equal-length digests. */
export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** pathSegments splits and decodes a path; a trailing slash is ignored, bad escapes match nothing. */
export function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

/** matchRoute is the route's captured parameters when its path fits `segments`, else undefined. */
export function matchRoute(route: Route, segments: readonly string[]): Record<string, string> | undefined {
  if (route.path.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const want = route.path[i]!;
    const got = segments[i]!;
    if (want.startsWith(':')) params[want.slice(1)] = got;
    else if (want !== got) return undefined;
  }
  return params;
}

/** checkSameOrigin refuses state changes sent by a browser on behalf of another origin (CSRF). */
export function checkSameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  let crossOrigin = site !== undefined && site !== 'same-origin' && site !== 'none';
  if (!crossOrigin && origin !== undefined) {
    try {
      crossOrigin = new URL(origin).host.toLowerCase() !== (req.headers.host ?? '').toLowerCase();
    } catch {
      crossOrigin = true; // "null" and garbage
    }
  }
  if (crossOrigin) throw new AdminError('FORBIDDEN', 'the admin API refuses changes requested by another origin');
}

/** bearerToken is the token of an `Authorization: Bearer` header, if the request has one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

/** sessionCookie is the session id in the dashboard's cookie, if the request has one. */
export function sessionCookie(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== ADMIN_COOKIE) continue;
    return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** cookieAttributes are the sign-in cookie's attributes: script-proof, same-site only, whole admin origin; Secure over TLS. */
export function cookieAttributes(req: IncomingMessage): string {
  return `HttpOnly; SameSite=Strict; Path=/${(req.socket as Partial<TLSSocket>).encrypted === true ? '; Secure' : ''}`;
}

/** readJsonBody reads at most MAX_BODY_BYTES and parses them; an empty body is undefined. */
export function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const tooLarge = (): AdminError => new AdminError('BODY_TOO_LARGE', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd);
      req.resume(); // discard the rest; the answer closes the connection
      reject(tooLarge());
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new AdminError('INVALID_BODY', `the request body is not valid JSON (${(err as Error).message})`));
      }
    };
    req.on('data', onData).on('end', onEnd).on('error', reject);
  });
}

/** isObject: a plain JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** send writes a Reply: JSON pretty-printed, no caching, no content sniffing. */
export function send(res: ServerResponse, reply: Reply): void {
  const isJson = 'json' in reply;
  const body = isJson ? `${JSON.stringify(reply.json, null, 2)}\n` : reply.text;
  res.writeHead(reply.status, {
    ...COMMON_HEADERS,
    'content-type': isJson ? 'application/json; charset=utf-8' : reply.contentType,
    'content-length': Buffer.byteLength(body),
    ...reply.headers,
  });
  res.end(body);
}
