/**
 * MaintenanceBackoff keeps a backend that answered Servoy's maintenance 503 (to a health
 * probe or to a new session) out of new placements for affinity.maintenanceBackoff after the
 * last such answer, while its sessions keep reaching it. One timer per backend, restarted by
 * every new 503; the pool holds the state, this module only its clock.
 */
import type { Pool } from '../pool/pool.js';

/** MaintenanceBackoff owns the per-backend maintenance timers; see the file comment. */
export class MaintenanceBackoff {
  readonly #timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly pool: Pool,
    /** affinity.maintenanceBackoff of the running config (a reload applies to the next 503). */
    private readonly backoffMs: () => number,
  ) {}

  /** enter marks the backend in maintenance (again) and restarts its backoff. */
  enter(backendId: string, cause: string): void {
    this.pool.setMaintenance(backendId, true, cause);
    clearTimeout(this.#timers.get(backendId));
    const timer = setTimeout(() => {
      this.#timers.delete(backendId);
      this.pool.setMaintenance(backendId, false, 'maintenanceBackoff passed');
    }, this.backoffMs()).unref();
    this.#timers.set(backendId, timer);
  }

  /** close stops every timer (the balancer is closing). */
  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}
