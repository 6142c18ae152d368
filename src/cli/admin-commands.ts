/**
 * The commands that operate a running balancer through its admin API: status, drain,
 * undrain, disable, enable, backends add/set/remove, route, reload, partitions. Each is a thin
 * call (admin-client.ts) plus output meant for a person at a terminal: aligned tables,
 * one-sentence results, and a hint at the next step where there is an obvious one.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendStatus, ReloadResult, RouteExplanation } from '../admin/control.js';
import type { StateHealth } from '../pool/readiness.js';
import type { PathExplanation } from '../routing/path-rules.js';
import { AdminApiError, addAdminOptions, adminRequest, resolveTarget, type AdminOptions, type AdminTarget } from './admin-client.js';
import { CliError } from './cli-error.js';
import { registerObserveCommands } from './observe-commands.js';

/** Exit code of `drain --wait` stopped with Ctrl+C (the shell convention 128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

const ENV_HINT =
  '\nThe admin API is found from --admin/--token, SERVOY_LB_ADMIN/SERVOY_LB_TOKEN, or the config file (-c, default ./lb.config.json);\nan https one is verified against --ca FILE / SERVOY_LB_CA, else admin.tls.cert of the config file.\n' +
  'Exit codes: 0 done, 1 bad usage or config, 2 balancer unreachable or refused.';

/** registerAdminCommands adds every admin-API command to the program. */
export function registerAdminCommands(program: Command): void {
  registerStatus(program);
  registerStateCommands(program);
  registerBackends(program);
  registerRoute(program);
  registerReload(program);
  registerPartitions(program);
  registerObserveCommands(program);
}

/** Out prints one line (or, with newline false, a progress fragment) to the command's stdout. */
type Out = (line?: string, newline?: boolean) => void;

/**
 * outFor writes through the command's output configuration (commander's configureOutput),
 * so results can be captured like help texts are; by default that is process.stdout.
 */
export function outFor(command: Command): Out {
  const write = command.configureOutput().writeOut ?? ((text: string) => void process.stdout.write(text));
  return (line = '', newline = true) => write(newline ? `${line}\n` : line);
}

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n${ENV_HINT}`;
}

const path = (id: string): string => `/api/backends/${encodeURIComponent(id)}`;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function load(b: BackendStatus): string {
  return `${plural(b.sessions, 'session')}, ${plural(b.websockets, 'websocket')}`;
}

/** formatTable aligns columns; columns listed in right are right-aligned (numbers). */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** ago renders how long since an ISO time: "45s", "12m", "3h". */
function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function stateText(b: BackendStatus): string {
  if (b.state === 'down' && b.holdingSessions) return 'down (holding sessions)';
  return b.state === 'draining' && b.drainingSince ? `draining ${ago(b.drainingSince)}` : b.state;
}

/** statusTable renders backends as `servoy-lb status` prints them. */
export function statusTable(backends: readonly BackendStatus[]): string {
  const headers = ['ID', 'URL', 'STATE', 'HEALTH', 'WEIGHT', 'SESSIONS', 'WEBSOCKETS', 'REQUESTS', 'ERRORS'];
  const rows = backends.map((b) => [
    b.id,
    b.url,
    stateText(b),
    b.health,
    String(b.weight),
    b.maxSessions === null ? String(b.sessions) : `${b.sessions}/${b.maxSessions}`,
    String(b.websockets),
    String(b.requests),
    String(b.errors),
  ]);
  return formatTable(headers, rows, new Set([4, 5, 6, 7, 8]));
}

async function target(options: AdminOptions): Promise<AdminTarget> {
  return resolveTarget(options);
}

async function listBackends(t: AdminTarget): Promise<BackendStatus[]> {
  return (await adminRequest<{ backends: BackendStatus[] }>(t, 'GET', '/api/backends')).backends;
}

function registerStatus(program: Command): void {
  addAdminOptions(
    program
      .command('status')
      .summary('show every backend with its state and load')
      .description(
        'Show every backend of the running balancer: id, url, state (up, draining, drained, maintenance, disabled, down), ' +
          'health-check verdict, weight, active sessions (of maxSessions), open websockets, and request and error counts since start.',
      )
      .option('--json', 'print the backends as JSON (every field, for scripts)'),
  )
    .addHelpText('after', examples('servoy-lb status', 'servoy-lb status --json | jq \'.[] | select(.state != "up") | .id\'', 'servoy-lb status --admin http://10.0.0.5:8081 --token "$TOKEN"'))
    .action(async (options: AdminOptions & { json?: boolean }, command: Command) => {
      const out = outFor(command);
      const t = await target(options);
      const backends = await listBackends(t);
      if (options.json) {
        out(JSON.stringify(backends, null, 2));
        return;
      }
      out(backends.length === 0 ? 'no backends' : statusTable(backends));
      // Several balancers: say when the shared state (Redis) cannot be reached.
      const state = (await adminRequest<{ state?: StateHealth }>(t, 'GET', '/healthz').catch(() => ({}) as { state?: StateHealth })).state;
      if (state?.kind === 'redis') out(state.ok ? 'shared state: Redis reachable' : `shared state: ${state.reason ?? 'Redis unreachable'}`);
    });
}

type Action = 'drain' | 'undrain' | 'disable' | 'enable';

const STATE_COMMANDS: Record<Action, { summary: string; description: string; example: string; done(b: BackendStatus): string }> = {
  drain: {
    summary: 'stop sending new sessions to a backend; its current sessions finish there',
    description:
      'Drain a backend: it takes no new sessions, while its existing sessions and websockets keep reaching it until they end ' +
      '(no request for affinity.sessionIdle and no open websocket) or drain.maxWait passes; then its state is "drained" and it ' +
      'can be stopped or removed. With --wait, show the remaining sessions every second until then (Ctrl+C stops waiting; the backend keeps draining).',
    example: 'servoy-lb drain servoy-a --wait',
    done: (b) => `${b.id} is draining: it takes no new sessions; ${load(b)} finish there (follow with: servoy-lb drain ${b.id} --wait)`,
  },
  undrain: {
    summary: 'let a draining backend take new sessions again',
    description: 'Undo drain: the backend takes new sessions again (once its health checks pass).',
    example: 'servoy-lb undrain servoy-a',
    done: (b) => `${b.id} takes new sessions again (state ${b.state})`,
  },
  disable: {
    summary: 'take a backend out of rotation entirely',
    description:
      'Disable a backend: it gets no traffic at all, not even its existing sessions, which are placed on other backends ' +
      '(their users lose their Servoy client state). Its open WebSockets stay until they close, unless --close closes them now. ' +
      'Use drain first to let sessions end gracefully.',
    example: 'servoy-lb disable servoy-a --close',
    done: (b) => `${b.id} is disabled: it gets no traffic${b.sessions > 0 ? `; its ${plural(b.sessions, 'session')} will be placed on other backends` : ''}`,
  },
  enable: {
    summary: 'put a disabled backend back into rotation',
    description: 'Enable a disabled backend: it serves and takes new sessions again (once its health checks pass).',
    example: 'servoy-lb enable servoy-a',
    done: (b) => `${b.id} is enabled (state ${b.state})`,
  },
};

function registerStateCommands(program: Command): void {
  for (const action of Object.keys(STATE_COMMANDS) as Action[]) {
    const spec = STATE_COMMANDS[action];
    const command = program.command(action).argument('<ID>', 'backend id (see servoy-lb status)').summary(spec.summary).description(spec.description);
    if (action === 'drain') command.option('--wait', 'wait until the backend holds no sessions, showing progress');
    if (action === 'disable') command.option('--close', 'also close its open WebSockets now (their clients reconnect to another backend)');
    addAdminOptions(command)
      .addHelpText('after', examples(spec.example))
      .action(async (id: string, options: AdminOptions & { wait?: boolean; close?: boolean }, command: Command) => {
        const out = outFor(command);
        const t = await target(options);
        const { backend } = await adminRequest<{ backend: BackendStatus }>(t, 'POST', `${path(id)}/${action}${options.close ? '?close=1' : ''}`);
        if (action === 'drain' && options.wait) await waitDrained(t, backend, out);
        else out(options.close ? `${spec.done(backend)}; its open websockets are closed` : spec.done(backend));
      });
  }
}

/**
 * waitDrained polls every second until the backend is drained. On a terminal the progress
 * line is rewritten in place; otherwise (logs, CI) a line is printed only when it changes.
 */
async function waitDrained(t: AdminTarget, first: BackendStatus, out: Out): Promise<void> {
  const id = first.id;
  const tty = process.stdout.isTTY === true;
  const interrupted = new AbortController();
  const onSigint = (): void => interrupted.abort();
  process.once('SIGINT', onSigint);
  let last = '';
  const endLine = (): void => {
    if (tty && last !== '') out();
    last = '';
  };
  try {
    let b = first;
    for (;;) {
      if (b.state === 'drained') {
        endLine();
        out(b.sessions + b.websockets === 0 ? `${id} is drained: no sessions left` : `${id} is drained (drain.maxWait passed with ${load(b)} still there)`);
        return;
      }
      if (b.admin !== 'draining') {
        endLine();
        throw new CliError(`${id} is no longer draining (state ${b.state}; someone changed it); stopped waiting`, 2);
      }
      const line = `${id} draining: ${load(b)} left`;
      if (tty) out(`\r${line}\x1b[K`, false);
      else if (line !== last) out(line);
      last = line;
      try {
        await sleep(1000, undefined, { signal: interrupted.signal });
      } catch {
        endLine();
        out(`stopped waiting; ${id} keeps draining (undo with: servoy-lb undrain ${id})`);
        process.exitCode = EXIT_INTERRUPTED;
        return;
      }
      const next = (await listBackends(t)).find((row) => row.id === id);
      if (next === undefined) {
        endLine();
        throw new CliError(`${id} was removed while draining; stopped waiting`, 2);
      }
      b = next;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** positiveInt parses an option value as a whole number from 1 to max (commander's argParser). */
export function positiveInt(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    return n;
  };
}

function registerBackends(program: Command): void {
  const backends = program
    .command('backends')
    .summary('add, remove or reweight backends at run time')
    .description('Change the pool of the running balancer without a restart. Changes are kept in the state store (they survive restarts); put them in the config file too to keep it the reference.')
    .addHelpText('after', examples('servoy-lb backends add servoy-c http://10.0.0.13:8080 --weight 2', 'servoy-lb backends set servoy-c --weight 3', 'servoy-lb backends remove servoy-c'));

  addAdminOptions(
    backends
      .command('add')
      .argument('<ID>', 'new backend id: 1-64 letters, digits, "_" or "-"')
      .argument('<URL>', 'base URL of the Servoy server, e.g. http://10.0.0.13:8080')
      .summary('add a backend')
      .description('Add a backend to the running balancer. It counts as up at once and takes new sessions until its health checks say otherwise.')
      .option('--weight <N>', 'relative share of new sessions, 1-1000 (default 1)', positiveInt(1000))
      .option('--max-sessions <N>', 'take no new sessions once this many are active', positiveInt(Number.MAX_SAFE_INTEGER))
      .option('--route <R>', "Tomcat jvmRoute suffix of this server's session ids (default: the id)"),
  )
    .addHelpText('after', examples('servoy-lb backends add servoy-c http://10.0.0.13:8080', 'servoy-lb backends add servoy-d http://10.0.0.14:8080 --weight 2 --max-sessions 400 --route jvm4'))
    .action(async (id: string, url: string, options: AdminOptions & { weight?: number; maxSessions?: number; route?: string }, command: Command) => {
      const out = outFor(command);
      const body = { id, url, weight: options.weight, maxSessions: options.maxSessions, route: options.route };
      const { backend: b } = await adminRequest<{ backend: BackendStatus }>(await target(options), 'POST', '/api/backends', body);
      const max = b.maxSessions === null ? '' : `, at most ${plural(b.maxSessions, 'session')}`;
      out(`added ${b.id} (${b.url}, weight ${b.weight}${max}): state ${b.state}`);
    });

  addAdminOptions(
    backends
      .command('set')
      .argument('<ID>', 'backend id (see servoy-lb status)')
      .summary("change a backend's weight")
      .description(
        "Change a backend's weight (its relative share of new sessions) in the running balancer. Existing sessions stay where they are. " +
          'The weight is kept in the state store and survives restarts and reloads; once the config file says the same weight, the file is the reference again.',
      )
      .requiredOption('--weight <N>', 'relative share of new sessions, 1-1000', positiveInt(1000)),
  )
    .addHelpText('after', examples('servoy-lb backends set servoy-a --weight 3'))
    .action(async (id: string, options: AdminOptions & { weight: number }, command: Command) => {
      const out = outFor(command);
      const { backend: b } = await adminRequest<{ backend: BackendStatus }>(await target(options), 'PATCH', path(id), { weight: options.weight });
      out(`${b.id} has weight ${b.weight} (state ${b.state})`);
    });

  addAdminOptions(
    backends
      .command('remove')
      .argument('<ID>', 'backend id')
      .summary('remove a backend')
      .description('Remove a backend from the running balancer. It must be drained first (servoy-lb drain ID --wait); --force removes it anyway and its sessions are placed on other backends.')
      .option('--force', 'remove even if it still holds sessions'),
  )
    .addHelpText('after', examples('servoy-lb drain servoy-c --wait && servoy-lb backends remove servoy-c', 'servoy-lb backends remove servoy-c --force'))
    .action(async (id: string, options: AdminOptions & { force?: boolean }, command: Command) => {
      const out = outFor(command);
      try {
        await adminRequest(await target(options), 'DELETE', `${path(id)}${options.force ? '?force=1' : ''}`);
      } catch (err) {
        if (err instanceof AdminApiError && err.code === 'NOT_DRAINED') {
          throw new CliError(`${err.message}\n(drain it first: servoy-lb drain ${id} --wait; or remove it anyway with --force)`, 2);
        }
        throw err;
      }
      out(`removed ${id}`);
    });
}

/** routeReport renders a RouteExplanation as `servoy-lb route` prints it: the decision, the rules tried, the candidates. */
export function routeReport(r: RouteExplanation): string {
  const subject = r.key !== null && r.key !== r.client ? `key ${r.key}${r.client === '' ? '' : ` from ${r.client}`}` : `client ${r.client}`;
  const head = r.backend === null ? `${subject}: no backend (${r.rule})` : `${subject} -> ${r.backend} (${r.rule})`;
  const steps = r.steps.map((s, i) => `  ${i + 1}. ${s.rule}: ${s.outcome} - ${s.detail}`).join('\n');
  let text = `${head}\nwhy: ${r.reason}\n\nrules tried:\n${steps}`;
  if (r.candidates.length > 0) {
    const rows = r.candidates.map((c, i) => [
      c.id === r.backend ? '*' : '',
      String(i + 1),
      c.id,
      c.state,
      String(c.sessions),
      c.cap === null ? '-' : String(c.cap),
      c.skipped ?? (c.fits ? 'yes' : 'no'),
    ]);
    text += `\n\nnew-session candidates in hash order (* = chosen):\n${formatTable(['', '#', 'ID', 'STATE', 'LOAD', 'CAP', 'FITS'], rows, new Set([1, 4, 5]))}`;
  }
  return text;
}

/** pathReport renders what the path rules do with a path, printed above the route explanation by `servoy-lb route --path`. */
export function pathReport(p: PathExplanation): string {
  const rule = p.rule === null ? 'no rule' : `rule ${JSON.stringify(p.rule.prefix)} (${p.rule.kind})`;
  const normalised = p.normalised === null ? '' : p.normalised === p.path ? '' : ` (normalised: ${p.normalised})`;
  return `path ${p.path}${normalised}: ${p.verdict}, ${rule}\nwhy: ${p.reason}`;
}

function registerRoute(program: Command): void {
  addAdminOptions(
    program
      .command('route')
      .summary('say which backend a request would reach now, and why')
      .description(
        'Explain routing for a request without cookies: from client address ADDR, with partition key KEY in partition mode. ' +
          'Prints the backend it would reach now, every rule the router tried (the same code that routes real requests), and the ' +
          'new-session candidates in hash order with their load and cap (bounded load). In session mode --key stands for the client address.',
      )
      .option('--key <KEY>', 'the partition key (partition mode)')
      .option('--client <ADDR>', 'the client address, e.g. 10.0.0.57 (also what an "allow" path rule checks)')
      .option('--path <PATH>', 'also say which path rule (paths) applies to this request path, and what it does')
      .option('--cookie <VALUE>', "the value of the balancer's affinity cookie the request carries (SERVOYLB)")
      .option('--session <ID>', 'the servlet session id (JSESSIONID) the request carries')
      .option('--json', 'print the explanation as JSON'),
  )
    .addHelpText('after', examples('servoy-lb route --client 10.0.0.57', 'servoy-lb route --key acme --json', 'servoy-lb route --client 10.0.0.57 --path /servoy-admin/'))
    .action(async (options: AdminOptions & { key?: string; client?: string; path?: string; cookie?: string; session?: string; json?: boolean }, command: Command) => {
      const out = outFor(command);
      if (options.key === undefined && options.client === undefined && options.cookie === undefined && options.session === undefined) {
        throw new CliError('say which request to explain: --client ADDR, and --key KEY in partition mode');
      }
      const params = new URLSearchParams();
      for (const name of ['key', 'client', 'path', 'cookie', 'session'] as const) {
        const value = options[name];
        if (value !== undefined) params.set(name, value);
      }
      const r = await adminRequest<RouteExplanation>(await target(options), 'GET', `/api/route?${params.toString()}`);
      out(options.json ? JSON.stringify(r, null, 2) : r.path === undefined ? routeReport(r) : `${pathReport(r.path)}\n\n${routeReport(r)}`);
    });
}

/** reloadReport renders a ReloadResult as `servoy-lb reload` prints it. */
export function reloadReport(r: ReloadResult): string {
  const lines: [string, readonly string[]][] = [
    ['added', r.added],
    ['removed', r.removed],
    ['updated', r.updated],
    ['applied', r.settings],
    ['needs a restart', r.needsRestart],
  ];
  const changed = lines.filter(([, items]) => items.length > 0);
  if (changed.length === 0) return 'config reloaded: nothing changed';
  const width = Math.max(...changed.map(([label]) => label.length)) + 1;
  const body = changed.map(([label, items]) => `  ${`${label}:`.padEnd(width)} ${items.join(', ')}`);
  const restart = r.needsRestart.length > 0 ? ['(restart servoy-lb to apply the settings that need a restart)'] : [];
  return ['config reloaded', ...body, ...restart].join('\n');
}

function registerReload(program: Command): void {
  addAdminOptions(
    program
      .command('reload')
      .summary('re-read the config file without dropping connections')
      .description(
        'Make the running balancer re-read its config file (as SIGHUP does) and apply it without dropping a connection. ' +
          'Prints what changed; if the file has problems, prints them and the balancer keeps its running config (exit 1).',
      ),
  )
    .addHelpText('after', examples('servoy-lb validate && servoy-lb reload'))
    .action(async (options: AdminOptions, command: Command) => {
      outFor(command)(reloadReport(await adminRequest<ReloadResult>(await target(options), 'POST', '/api/reload')));
    });
}

const NOT_PARTITION_MODE =
  'partition mode is not enabled on this balancer: set affinity.mode to "partition" and affinity.partitionKey in the config file, then restart it';

/** Partition calls answer NOT_PARTITION_MODE in session mode; say so in operator terms. */
async function partitionCall<T>(options: AdminOptions, method: 'GET' | 'PUT', url: string, body?: unknown): Promise<T> {
  try {
    return await adminRequest<T>(await target(options), method, url, body);
  } catch (err) {
    if (err instanceof AdminApiError && err.code === 'NOT_PARTITION_MODE') throw new CliError(NOT_PARTITION_MODE, 2);
    throw err;
  }
}

interface PartitionRow {
  key: string;
  backend: string;
  pinned?: boolean;
  assignedAt?: string | null;
  lastSeen?: string | null;
  previous?: string | null;
  sessions?: number;
}

/** allPartitions pages through GET /api/partitions (the API caps a page at 10,000 rows). */
async function allPartitions(options: AdminOptions): Promise<PartitionRow[]> {
  const rows: PartitionRow[] = [];
  for (;;) {
    const page = await partitionCall<{ total?: number; partitions: PartitionRow[] }>(options, 'GET', `/api/partitions?offset=${rows.length}&limit=5000`);
    rows.push(...page.partitions);
    if (page.partitions.length < 5000 || (page.total !== undefined && rows.length >= page.total)) return rows;
  }
}

function registerPartitions(program: Command): void {
  const partitions = program
    .command('partitions')
    .summary('show or move durable partition assignments (partition mode)')
    .description('In partition mode every partition key (tenant, customer, ...) is durably assigned to one backend, which holds its data. List the assignments, or move one.')
    .addHelpText('after', examples('servoy-lb partitions', 'servoy-lb partitions move acme servoy-b --drain'));

  addAdminOptions(
    partitions.command('list', { isDefault: true }).summary('list partition assignments (the default)').description('List every partition key with its backend; pinned ones come from affinity.partitions in the config.').option('--json', 'print the assignments as JSON'),
  )
    .addHelpText('after', examples('servoy-lb partitions list', 'servoy-lb partitions --json'))
    .action(async (options: AdminOptions & { json?: boolean }, command: Command) => {
      const out = outFor(command);
      const rows = await allPartitions(options);
      if (options.json) return out(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return out('no partition assignments yet');
      out(
        formatTable(
          ['KEY', 'BACKEND', 'SOURCE', 'ASSIGNED', 'LAST SEEN', 'SESSIONS'],
          rows.map((p) => [
            p.key,
            p.previous ? `${p.backend} (draining ${p.previous})` : p.backend,
            p.pinned ? 'pinned in config' : 'assigned',
            p.assignedAt ?? '-',
            p.lastSeen ?? '-',
            String(p.sessions ?? '-'),
          ]),
        ),
      );
    });

  addAdminOptions(
    partitions
      .command('move')
      .argument('<KEY>', 'partition key')
      .argument('<ID>', 'backend that now holds the partition\'s data')
      .summary('move a partition to another backend')
      .description(
        'Assign a partition to another backend (move its data first: the balancer only routes). New sessions go to the new backend at once; ' +
          'live sessions on the old backend are placed anew unless --drain lets them finish there.',
      )
      .option('--drain', 'let live sessions on the old backend finish there'),
  )
    .addHelpText('after', examples('servoy-lb partitions move acme servoy-b --drain'))
    .action(async (key: string, id: string, options: AdminOptions & { drain?: boolean }, command: Command) => {
      const out = outFor(command);
      await partitionCall(options, 'PUT', `/api/partitions/${encodeURIComponent(key)}`, { backend: id, drain: options.drain === true });
      out(`moved partition ${key} to ${id}${options.drain ? ' (live sessions finish on the old backend)' : ''}`);
    });
}
