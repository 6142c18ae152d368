/**
 * How a forwarded request ended, one word for the counters, the access log, outlier
 * detection and the workers' reports to the primary to agree on.
 */

/** ExchangeOutcome classifies how an exchange ended, for counters and the access log. */
export type ExchangeOutcome = 'ok' | 'client-abort' | 'client-timeout' | 'backend-error' | 'timeout' | 'bad-request' | 'no-resources';
