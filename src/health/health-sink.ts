/**
 * HealthSink is the one thing health checking knows about the rest of servoy-lb (as
 * Traefik's checker knows only `setStatus(name, up)`): the active checker and the outlier
 * detector report verdicts into it and never import the pool or the balancer. The Pool
 * satisfies it structurally (`pool.setHealth`), so state flows one way: checks -> pool ->
 * snapshot -> router, and tests can pass a recording fake.
 */

/** HealthSink receives up/down verdicts; callers invoke it only when their verdict really flips. */
export interface HealthSink {
  /** setHealth marks `backendId` up (`healthy`) or down; `cause` is a few words for the log line. */
  setHealth(backendId: string, healthy: boolean, cause: string): void;
}
