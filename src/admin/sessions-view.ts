/**
 * The sessions list of the dashboard and `servoy-lb sessions` (GET /api/sessions): who is
 * on which server. The client id is the bearer of a session's affinity (whoever presents
 * it lands on that server), so the list shows only its first SHORT_ID_CHARS characters:
 * enough to tell sessions apart and to match a cookie an admin looks at, never enough to
 * forge one (a 16-character id keeps 60 of its 96 random bits hidden).
 */

import type { ActiveSession } from '../sessions/accounting.js';

/** How many characters of a client id the list shows. */
export const SHORT_ID_CHARS = 6;

/** The default and the largest `limit` of a sessions list. */
export const SESSIONS_DEFAULT_LIMIT = 100;
export const SESSIONS_MAX_LIMIT = 10_000;

/** SessionRow is one active session as listed (ages in ms; times relative to the answer). */
export interface SessionRow {
  /** The shortened client id (shortClientId). */
  readonly client: string;
  readonly backend: string;
  /** Since the session's first request (ms). */
  readonly ageMs: number;
  /** Since its last request or WebSocket activity (ms). */
  readonly idleMs: number;
  readonly requests: number;
  readonly websockets: number;
  /** With --workers: the worker process that holds it. */
  readonly worker?: number;
}

/** SessionQuery is what a sessions list is asked for. */
export interface SessionQuery {
  readonly backend?: string | undefined;
  readonly limit: number;
}

/** SessionList is the answer of GET /api/sessions. */
export interface SessionList {
  /** The most recently active first, at most `limit`. */
  readonly sessions: SessionRow[];
  /** Active sessions matching the filter (before the limit). */
  readonly total: number;
  /** Always true: the list is this balancer instance's (other instances sharing state.redis hold their own). */
  readonly instance: true;
  /** With --workers: workers that did not answer in time (their sessions are missing). */
  readonly missingWorkers?: number[];
}

/** shortClientId is the shown form of a client id; see the file comment. */
export function shortClientId(clientId: string): string {
  return clientId.length <= SHORT_ID_CHARS ? '…' : `${clientId.slice(0, SHORT_ID_CHARS)}…`;
}

/** mergeSessionLists joins the lists of several workers into one, most recent first, `limit` long. */
export function mergeSessionLists(parts: readonly { sessions: readonly SessionRow[]; total: number }[], limit: number): { sessions: SessionRow[]; total: number } {
  const all = parts.flatMap((p) => p.sessions);
  all.sort((a, b) => a.idleMs - b.idleMs);
  return { sessions: all.slice(0, limit), total: parts.reduce((n, p) => n + p.total, 0) };
}

/** sessionRows turns the accounting's sessions into listed rows as of `now` (ids shortened here). */
export function sessionRows(sessions: readonly ActiveSession[], now: number, worker?: number): SessionRow[] {
  return sessions.map((s) => ({
    client: shortClientId(s.key),
    backend: s.backend,
    ageMs: Math.max(0, now - s.createdAt),
    idleMs: Math.max(0, now - s.lastSeen),
    requests: s.requests,
    websockets: s.websockets,
    ...(worker === undefined ? {} : { worker }),
  }));
}
