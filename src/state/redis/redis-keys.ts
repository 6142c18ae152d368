/**
 * The Redis keys and channels of one pool, all under its prefix (`servoy-lb:<pool>:`), in
 * one place so the layout can be read at a glance:
 *
 *   pool:backends        hash  backend id -> {"at":order,"backend":{...}} (the shared pool)
 *   pool:admin           hash  backend id -> {"admin":"draining","since":ms} (ready = absent)
 *   pool:version         int   bumped by every pool change (gaps in messages are seen)
 *   pool:seeded          str   set when the first instance seeded the pool from its config
 *   pool:changes         chan  "<version>\n<op>\n<id>\n<value>" per pool change
 *   partitions           hash  partition key -> {"backend":..,"assignedAt":..,...}
 *   partitions:counts    hash  backend id -> number of partitions it holds
 *   partitions:epoch     str   random id set with the first read: missing = Redis lost the data
 *   partitions:changes   chan  {"key":..,"partition":{...}} or {"key":..,"deleted":true} per change
 *   cookie-secret        str   the generated affinity-cookie secret (first writer wins)
 *   session:<id>         str   backend of a learned session id (expires)
 *   events               list  the pool's shared events, newest first, capped (JSON each)
 *   sessions:changes     chan  {"id":..,"backend":..|null,"from":instance} per learned (or forgotten) session id
 *   counts:<instance>    hash  backend id -> sessions held by one instance (expires)
 *   counts:instances     set   instance ids that wrote counts (pruned when expired)
 */

/** RedisKeys are the names used by one pool. */
export interface RedisKeys {
  readonly poolBackends: string;
  readonly poolAdmin: string;
  readonly poolVersion: string;
  readonly poolSeeded: string;
  readonly poolChanges: string;
  readonly partitions: string;
  readonly partitionCounts: string;
  readonly partitionsEpoch: string;
  readonly partitionChanges: string;
  readonly cookieSecret: string;
  readonly countInstances: string;
  readonly sessionChanges: string;
  session(id: string): string;
  /** The SCAN MATCH pattern of every learned session id's key (the prefix's glob characters escaped). */
  readonly sessionPattern: string;
  /** The shared event list (newest first, capped). */
  readonly events: string;
  counts(instance: string): string;
}

/** redisKeys names every key of the pool whose prefix is given (see the file comment). */
export function redisKeys(prefix: string): RedisKeys {
  return {
    poolBackends: `${prefix}pool:backends`,
    poolAdmin: `${prefix}pool:admin`,
    poolVersion: `${prefix}pool:version`,
    poolSeeded: `${prefix}pool:seeded`,
    poolChanges: `${prefix}pool:changes`,
    partitions: `${prefix}partitions`,
    partitionCounts: `${prefix}partitions:counts`,
    partitionsEpoch: `${prefix}partitions:epoch`,
    partitionChanges: `${prefix}partitions:changes`,
    cookieSecret: `${prefix}cookie-secret`,
    countInstances: `${prefix}counts:instances`,
    sessionChanges: `${prefix}sessions:changes`,
    session: (id) => `${prefix}session:${id}`,
    sessionPattern: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}session:*`,
    events: `${prefix}events`,
    counts: (instance) => `${prefix}counts:${instance}`,
  };
}
