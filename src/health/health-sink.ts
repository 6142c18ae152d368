/**
 * HealthSink is the one thing health checking knows about the rest of servoy-lb (as
 * Traefik's checker knows only `setStatus(name, up)`): the active checker and the outlier
 * detector report verdicts into it and never import the pool or the balancer. In the
 * balancer it is FailoverHolds (src/control/failover-holds.ts): the pool, plus the
 * affinity.failoverDelay and maintenance timers. State flows one way: checks -> pool ->
 * snapshot -> router, and tests can pass a recording fake.
 */

/** HealthSink receives up/down verdicts; callers invoke it only when their verdict really flips. */
export interface HealthSink {
  /** setHealth marks `backendId` up (`healthy`) or down; `cause` is a few words for the log line. */
  setHealth(backendId: string, healthy: boolean, cause: string): void;
  /**
   * inMaintenance hears a probe answered 503: Servoy in maintenance mode (HAProxy's
   * `disable-on-404` idea), which is neither up for new sessions nor down. Called for every
   * such probe of a backend that is not down; optional for sinks that only track up/down.
   */
  inMaintenance?(backendId: string): void;
}
