/**
 * `servoy-lb sessions` and `servoy-lb events`: who is on which server, and what happened to
 * the backends lately, read from the running balancer's admin API (GET /api/sessions,
 * /api/events). Kept apart from admin-commands.ts, which changes things; these only look.
 */
import type { Command } from 'commander';
import type { AdminEvent } from '../admin/events.js';
import type { SessionList } from '../admin/sessions-view.js';
import { addAdminOptions, adminRequest, resolveTarget, type AdminOptions } from './admin-client.js';
import { formatTable, outFor, positiveInt } from './admin-commands.js';

/** registerObserveCommands adds `sessions` and `events` to the program. */
export function registerObserveCommands(program: Command): void {
  addAdminOptions(
    program
      .command('sessions')
      .summary("list this balancer instance's active sessions")
      .description(
        'List the active sessions of this balancer instance (with --workers: of all its workers), most recently active first: ' +
          'the client id shortened (the full id would let anyone take over the session\'s server), backend, age, time since the last request, requests and open websockets.',
      )
      .option('--backend <ID>', 'only the sessions on this backend')
      .option('--limit <N>', 'at most N sessions (1 to 10000, default 100)', positiveInt(10_000))
      .option('--json', 'print the answer as JSON (every field, for scripts)'),
  )
    .addHelpText('after', '\nExamples:\n  servoy-lb sessions\n  servoy-lb sessions --backend servoy-b --limit 20\n  servoy-lb sessions --json | jq \'.sessions[] | select(.websockets > 0)\'\n')
    .action(async (options: AdminOptions & { backend?: string; limit?: number; json?: boolean }, command: Command) => {
      const out = outFor(command);
      const query = new URLSearchParams();
      if (options.backend !== undefined) query.set('backend', options.backend);
      if (options.limit !== undefined) query.set('limit', String(options.limit));
      const list = await adminRequest<SessionList>(await resolveTarget(options), 'GET', `/api/sessions${query.size > 0 ? `?${query}` : ''}`);
      if (options.json) return out(JSON.stringify(list, null, 2));
      out(sessionsReport(list, options.backend));
    });

  addAdminOptions(
    program
      .command('events')
      .summary('show the latest backend state changes and admin actions')
      .description('Show the latest backend state changes (with their cause: health check, drain, ...) and admin actions (with who asked), newest first, as kept by the running balancer since it started (the last 1000).')
      .option('--limit <N>', 'at most N events (1 to 1000, default 100)', positiveInt(1000))
      .option('--json', 'print the events as JSON'),
  )
    .addHelpText('after', '\nExamples:\n  servoy-lb events\n  servoy-lb events --limit 10 --json\n')
    .action(async (options: AdminOptions & { limit?: number; json?: boolean }, command: Command) => {
      const out = outFor(command);
      const answer = await adminRequest<{ events: AdminEvent[]; sharedError?: string }>(await resolveTarget(options), 'GET', `/api/events${options.limit === undefined ? '' : `?limit=${options.limit}`}`);
      if (options.json) return out(JSON.stringify(answer.events, null, 2));
      out(eventsReport(answer.events, answer.sharedError));
    });
}

/** sessionsReport renders a sessions list as `servoy-lb sessions` prints it. */
export function sessionsReport(list: SessionList, backend?: string): string {
  const scope = backend === undefined ? '' : ` on ${backend}`;
  const shown = list.sessions.length < list.total ? `, showing the ${list.sessions.length} most recently active` : '';
  const header = `${list.total} active session${list.total === 1 ? '' : 's'}${scope} on this instance${shown}`;
  const missing = list.missingWorkers?.length ? `\nworkers ${list.missingWorkers.join(', ')} did not answer in time: their sessions are not listed` : '';
  if (list.sessions.length === 0) return `${header}${missing}`;
  const table = formatTable(
    ['ID', 'BACKEND', 'AGE', 'IDLE', 'REQUESTS', 'WS'],
    list.sessions.map((s) => [s.client, s.backend, duration(s.ageMs), duration(s.idleMs), String(s.requests), String(s.websockets)]),
    new Set([2, 3, 4, 5]),
  );
  return `${header}${missing}\n${table}`;
}

/** eventsReport renders events as `servoy-lb events` prints them. */
export function eventsReport(events: readonly AdminEvent[], sharedError?: string): string {
  const note = sharedError === undefined ? '' : `\n${sharedError}`;
  if (events.length === 0) return `no events since the balancer started${note}`;
  const change = (e: AdminEvent): string => (e.from === null && e.to === null ? '-' : `${e.from ?? '?'} -> ${e.to ?? '?'}`);
  // With a shared store (state.redis) the events are the pool's: each says which instance made it.
  const table = events.some((e) => e.instance !== undefined)
    ? formatTable(
        ['TIME', 'INSTANCE', 'BACKEND', 'CHANGE', 'CAUSE'],
        events.map((e) => [e.time, e.instance ?? '-', e.backend ?? '-', change(e), e.cause]),
      )
    : formatTable(
        ['TIME', 'BACKEND', 'CHANGE', 'CAUSE'],
        events.map((e) => [e.time, e.backend ?? '-', change(e), e.cause]),
      );
  return `${table}${note}`;
}

/** duration renders ms as "45s", "12m05s", "3h02m". */
function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
