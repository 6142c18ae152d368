/**
 * Latency buckets in seconds: Servoy answers most requests in milliseconds, but page
 * loads, reports and uploads can take seconds to minutes. In a file of their own so the
 * histogram, the dashboard's window and the workers' reporter share them without an
 * import cycle through metrics.ts.
 */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
