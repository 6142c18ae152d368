/**
 * BackendAdmin is the pool's run-time changes made by administrators: add and remove
 * backends, set weights, and the admin states (drain, undrain, disable, enable). Each change
 * is applied to the pool at once and then persisted through the state store, as the
 * backend records (src/state/backend-records.ts) that a restart or a reload merges with the
 * config file's backend list. A reload's new list comes through here too (reconcile), so
 * the records and where each backend came from stay in one place.
 */
import type { Logger } from 'pino';
import { AdminError, type AdminStateOptions, type ReloadResult } from '../admin/control.js';
import { backendSchema, type BackendConfig } from '../config/schema.js';
import type { Pool } from '../pool/pool.js';
import { mergeBackends, type BackendRecords } from '../state/backend-records.js';
import type { StateStore } from '../state/state-store.js';
import { requireWritable } from './state-guard.js';

/** BackendAdminDeps are what a run-time change touches besides the pool and the store. */
export interface BackendAdminDeps {
  readonly logger: Logger;
  /** The running config file's backends: a record is needed only where the pool differs from them. */
  readonly configBackends: () => readonly BackendConfig[];
  /** A backend left the pool: drop its outlier streak, sessions, connections and metric series. */
  readonly forget: (id: string) => void;
  /** `disable ID --close`: close its open WebSockets (after the state change). */
  readonly closeTunnels: (id: string) => void;
  /** An admin state changed: let the drain monitor look at once. */
  readonly adminStateChanged: () => void;
}

/** AdminAction is one of the admin-state commands. */
export type AdminAction = 'drain' | 'undrain' | 'disable' | 'enable';

/** BackendAdmin applies and persists run-time backend changes; see the file comment. */
export class BackendAdmin {
  #records: BackendRecords;
  #source: Map<string, 'config' | 'runtime'>;

  constructor(
    private readonly pool: Pool,
    private readonly store: Pick<StateStore, 'saveBackends' | 'health'>,
    private readonly deps: BackendAdminDeps,
    merged: { readonly records: BackendRecords; readonly source: ReadonlyMap<string, 'config' | 'runtime'> },
  ) {
    this.#records = merged.records;
    this.#source = new Map(merged.source);
  }

  /** sourceOf says where a backend came from: the config file, or added at run time. */
  sourceOf(id: string): 'config' | 'runtime' {
    return this.#source.get(id) ?? 'config';
  }

  /** add is `backends add`: a new backend, live at once and persisted. */
  async add(input: { id: string; url: string; weight?: number; maxSessions?: number; route?: string }): Promise<void> {
    requireWritable(this.store);
    const parsed = backendSchema.safeParse(input);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
      throw new AdminError('INVALID_BODY', `invalid backend: ${problems.join('; ')}`, problems);
    }
    const config: BackendConfig = { ...parsed.data, route: parsed.data.route ?? parsed.data.id };
    if (this.pool.has(config.id)) throw new AdminError('BACKEND_EXISTS', `a backend "${config.id}" already exists`);
    const clash = this.pool.configs().find((b) => b.route === config.route);
    if (clash !== undefined) throw new AdminError('BACKEND_EXISTS', `backend "${clash.id}" already uses route "${config.route}"`);
    this.pool.add(config, 'added by an administrator');
    this.#source.set(config.id, 'runtime');
    this.#records.removed = this.#records.removed.filter((id) => id !== config.id);
    if (!this.deps.configBackends().some((b) => b.id === config.id)) this.#records.added.push(config);
    await this.persist();
  }

  /** remove is `backends remove`: only a drained backend, unless forced, and never the last one. */
  async remove(id: string, force: boolean): Promise<void> {
    requireWritable(this.store);
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    if (!force && member.state !== 'drained') {
      throw new AdminError('NOT_DRAINED', `backend "${id}" is ${member.state}; drain it first and wait until it is drained (servoy-lb drain ${id} --wait), or force the removal`);
    }
    if (this.pool.members().length === 1) throw new AdminError('LAST_BACKEND', `backend "${id}" is the last one; add another first`);
    this.pool.remove(id, force ? 'removed by an administrator (forced)' : 'removed by an administrator');
    this.#source.delete(id);
    this.deps.forget(id);
    this.#records.added = this.#records.added.filter((b) => b.id !== id);
    if (this.deps.configBackends().some((b) => b.id === id)) this.#records.removed.push(id);
    delete this.#records.admin[id];
    if (this.#records.weights !== undefined) delete this.#records.weights[id];
    await this.persist();
  }

  /**
   * setWeight changes a backend's share of new sessions at run time (`backends set ID
   * --weight N`, PATCH /api/backends/ID). It is persisted: on a config-file backend as a
   * weight record that lasts until the file says the same weight (backend-records.ts), on
   * a run-time backend in its recorded addition.
   */
  async setWeight(id: string, weight: number): Promise<void> {
    requireWritable(this.store);
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) throw new AdminError('INVALID_BODY', `weight: expected a whole number from 1 to 1000, got ${JSON.stringify(weight)}`);
    this.pool.update({ ...member.config, weight }, `weight set to ${weight} by an administrator`);
    const added = this.#records.added.findIndex((b) => b.id === id);
    if (added >= 0) this.#records.added[added] = { ...this.#records.added[added]!, weight };
    else {
      const weights = (this.#records.weights ??= {});
      if (this.deps.configBackends().find((b) => b.id === id)?.weight === weight) delete weights[id];
      else weights[id] = weight;
    }
    await this.persist();
  }

  /** setAdminState is drain / undrain / disable / enable; undrain and enable undo only their own state. */
  async setAdminState(id: string, action: AdminAction, options: AdminStateOptions = {}): Promise<void> {
    requireWritable(this.store);
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    const cause = `${action} by an administrator`;
    switch (action) {
      case 'drain':
        this.pool.setAdmin(id, 'draining', cause);
        break;
      case 'disable':
        this.pool.setAdmin(id, 'disabled', cause);
        // After the state change: a client that reconnects at once is routed elsewhere.
        if (options.close === true) this.deps.closeTunnels(id);
        break;
      case 'undrain':
        if (member.admin === 'draining') this.pool.setAdmin(id, 'ready', cause);
        break;
      case 'enable':
        if (member.admin === 'disabled') this.pool.setAdmin(id, 'ready', cause);
        break;
    }
    const after = this.pool.member(id)!;
    if (after.admin === 'ready') delete this.#records.admin[id];
    else this.#records.admin[id] = after.drainingSince === undefined ? { admin: after.admin } : { admin: after.admin, since: after.drainingSince };
    this.deps.adminStateChanged();
    await this.persist();
  }

  /** wouldChange is whether reconcile(fromConfig) would change the pool (a reload checks it before applying anything). */
  wouldChange(fromConfig: readonly BackendConfig[]): boolean {
    const next = mergeBackends(fromConfig, this.#records).backends;
    const now = this.pool.configs();
    return next.length !== now.length || next.some((b) => JSON.stringify(b) !== JSON.stringify(now.find((c) => c.id === b.id)));
  }

  /**
   * reconcile applies a reloaded config file's backend list, merged with the run-time
   * records as at start: new ones are added, changed ones updated, missing ones removed.
   * The caller persists once the whole reload is applied.
   */
  reconcile(fromConfig: readonly BackendConfig[], cause = 'config reload'): Pick<ReloadResult, 'added' | 'removed' | 'updated'> {
    const merged = mergeBackends(fromConfig, this.#records);
    const before = new Map(this.pool.configs().map((b) => [b.id, b]));
    const nextIds = new Set(merged.backends.map((b) => b.id));
    const result = { added: [] as string[], removed: [] as string[], updated: [] as string[] };
    for (const config of merged.backends) {
      if (!before.has(config.id)) {
        this.pool.add(config, cause);
        result.added.push(config.id);
      } else if (this.pool.update(config, cause)) {
        result.updated.push(config.id);
      }
    }
    for (const id of before.keys()) {
      if (nextIds.has(id)) continue;
      this.pool.remove(id, cause);
      this.deps.forget(id);
      result.removed.push(id);
    }
    this.#records = merged.records;
    this.#source = new Map(merged.source);
    return result;
  }

  /**
   * follow applies a record set changed elsewhere (another instance, through the state
   * store's onChange): the pool becomes the config file's backends merged with it, and each
   * backend takes the admin state it records. Nothing is written back.
   */
  follow(records: BackendRecords): void {
    this.#records = records;
    this.reconcile(this.deps.configBackends(), 'changed on another instance');
    for (const member of this.pool.members()) {
      const id = member.config.id;
      const record = this.#records.admin[id];
      const admin = record?.admin ?? 'ready';
      if (member.admin !== admin) this.pool.setAdmin(id, admin, `${admin === 'ready' ? 'made ready' : `set ${admin}`} on another instance`, record?.since);
    }
    this.deps.adminStateChanged();
  }

  /** persist makes the records durable; a failure leaves the change live and says so. */
  async persist(): Promise<void> {
    try {
      await this.store.saveBackends(this.#records);
    } catch (err) {
      if (this.store.health().kind === 'redis') {
        // Redis went away between the check and the write: the other instances do not have it.
        this.deps.logger.error({ err: (err as Error).message }, 'cannot share a change; it is live on this balancer only');
        throw new AdminError('STATE_UNAVAILABLE', `the change is live on this balancer only, the shared state could not take it: ${(err as Error).message}; make it again once Redis is back`);
      }
      this.deps.logger.error({ err: (err as Error).message }, 'cannot write the state file; the change is live but will not survive a restart');
      throw new AdminError('INTERNAL', `the change is live, but the state file could not be written: ${(err as Error).message}`);
    }
  }
}
