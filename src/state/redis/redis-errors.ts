/**
 * What a failed Redis call means for an administrator, in one sentence. A client error
 * (connection refused, a command that got no answer in time, a closed connection) says
 * the shared state is unreachable; every caller turns that into the same typed error,
 * so the admin plane, the router and the CLI word it the same way.
 */

/** SharedStateUnreachableError: the shared state (Redis) cannot be read or changed right now. */
export class SharedStateUnreachableError extends Error {
  override name = 'SharedStateUnreachableError';
  /** Stable code for the admin API and the CLI. */
  readonly code = 'SHARED_STATE_UNREACHABLE';

  constructor(
    /** `HOST:PORT` or the sentinel description. */
    readonly address: string,
    /** Why, short: "connection refused". */
    readonly reason: string,
  ) {
    super(`shared state unreachable: Redis at ${address}: ${reason}; try again when it is back`);
  }
}

/** describeRedisError words a client-side Redis failure in a few words, for status and messages. */
export function describeRedisError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
  }
  if (/All sentinels are unreachable/i.test(message)) return 'all sentinels unreachable';
  if (/command timed out/i.test(message)) return 'no answer in time';
  if (/connection is closed|stream isn't writeable|connection lost/i.test(message) || e?.name === 'MaxRetriesPerRequestError') return 'not connected';
  return message.split('\n')[0]!.slice(0, 200);
}

/**
 * isConnectionFailure tells a failure of the connection (the state is unreachable) from a
 * reply error of Redis itself (a script error, a wrong type: a bug, not an outage).
 */
export function isConnectionFailure(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | null;
  if (e?.name !== 'ReplyError') return true;
  // Replies that mean "this server cannot serve the state right now" (loading, a replica after a failover, ...).
  return typeof e.message === 'string' && /^(LOADING|READONLY|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS)\b/.test(e.message);
}
