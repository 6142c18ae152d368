/**
 * The read-only admin calls behind the dashboard's live parts (SPEC "Admin API"):
 * GET /api/sessions, /api/events and /api/series. Kept apart from admin-server.ts, which
 * holds the HTTP plumbing and security; these only check their query and ask AdminControl.
 */
import { AdminError, type AdminControl } from './control.js';
import { SESSIONS_DEFAULT_LIMIT, SESSIONS_MAX_LIMIT } from './sessions-view.js';
import { EVENTS_KEPT } from './events.js';

/** ObserveRoute is one GET call: its path and a handler of the query string. */
export interface ObserveRoute {
  readonly path: string;
  handle(query: URLSearchParams): Promise<{ status: number; json: unknown }> | { status: number; json: unknown };
}

/** The longest history /api/series serves (s): what the balancer keeps. */
const SERIES_MAX_SECONDS = 900;

/** observeRoutes are the dashboard's read calls on `control`; see the file comment. */
export function observeRoutes(control: AdminControl): ObserveRoute[] {
  return [
    {
      path: '/api/sessions',
      async handle(query) {
        const limit = boundedInt(query.get('limit'), 'limit', SESSIONS_DEFAULT_LIMIT, 1, SESSIONS_MAX_LIMIT);
        const backend = query.get('backend') || undefined;
        if (backend !== undefined && !control.backends().some((b) => b.id === backend)) {
          throw new AdminError('UNKNOWN_BACKEND', `no backend "${backend}" (see servoy-lb status)`);
        }
        return { status: 200, json: await control.sessions({ backend, limit }) };
      },
    },
    {
      path: '/api/events',
      async handle(query) {
        const limit = boundedInt(query.get('limit'), 'limit', 100, 1, EVENTS_KEPT);
        return { status: 200, json: await control.events(limit) };
      },
    },
    {
      path: '/api/series',
      handle(query) {
        const seconds = boundedInt(query.get('seconds'), 'seconds', SERIES_MAX_SECONDS, 1, SERIES_MAX_SECONDS);
        return { status: 200, json: control.series(seconds) };
      },
    },
  ];
}

/** boundedInt reads a whole-number query parameter in [min, max], or answers 400 saying the range. */
function boundedInt(value: string | null, name: string, fallback: number, min: number, max: number): number {
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AdminError('INVALID_BODY', `the query parameter "${name}" must be a whole number from ${min} to ${max}`);
  }
  return n;
}
