/**
 * backendStatus turns the pool's view of a backend and its session counters into the row
 * administrators see (`servoy-lb status`, GET /api/backends, the dashboard, metrics).
 */
import type { MemberState } from '../pool/pool.js';
import type { BackendCounters } from '../sessions/accounting.js';
import type { BackendStatus } from './control.js';

/** backendStatus builds one BackendStatus row. */
export function backendStatus(member: MemberState, counters: BackendCounters, source: 'config' | 'runtime'): BackendStatus {
  const { config } = member;
  return {
    id: config.id,
    url: config.url,
    route: config.route ?? config.id,
    weight: config.weight,
    maxSessions: config.maxSessions ?? null,
    state: member.state,
    admin: member.admin,
    health: member.healthy ? 'up' : 'down',
    holdingSessions: member.holding && !member.healthy && member.admin !== 'disabled',
    drainingSince: member.drainingSince === undefined ? null : new Date(member.drainingSince).toISOString(),
    sessions: counters.sessions,
    websockets: counters.websockets,
    requests: counters.requests,
    errors: counters.errors,
    clientAborts: counters.clientAborts,
    bytesIn: counters.bytesIn,
    bytesOut: counters.bytesOut,
    source,
  };
}
