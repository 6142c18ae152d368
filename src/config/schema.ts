/**
 * The config schema: the one source of truth for every key of lb.config.json, its
 * default and its limits. Types are derived from it (Config), the JSON Schema for editors
 * is generated from it (schema/lb.config.schema.json), and validation errors name the
 * exact path and the rule it broke. Every object is strict: a typo is an error, never a
 * silent fallback to a default. Descriptions (`.meta`) end up in the JSON Schema, so an
 * editor shows them on hover.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

const DURATION_HINT = 'expected a duration: integer milliseconds or a string such as "500ms", "5s", "30m" or "12h"';

/**
 * The longest delay a Node.js timer keeps: 2^31 - 1 ms, about 24.8 days. A longer one
 * fires after 1 ms instead (with a TimeoutOverflowWarning), so a health-check interval of
 * "30d" would probe the backends non-stop.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Duration strings are short; the bound keeps the pattern's `\s*`s away from megabytes of blanks. */
const MAX_DURATION_TEXT = 64;

/** durationUpTo is a duration (integer milliseconds or "500ms" / "5s" / ...) parsed to ms, at most maxMs. */
function durationUpTo(maxMs: number, tooLong: string) {
  return z
    .union(
      [
        z.number().int(DURATION_HINT).nonnegative(DURATION_HINT),
        z
          .string()
          .refine((value) => value.length <= MAX_DURATION_TEXT, { message: DURATION_HINT, abort: true })
          .regex(/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$/, DURATION_HINT),
      ],
      { error: DURATION_HINT },
    )
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: DURATION_HINT });
        return z.NEVER;
      }
      if (ms > maxMs) {
        ctx.addIssue({ code: 'custom', message: tooLong });
        return z.NEVER;
      }
      return ms;
    })
    .meta({ description: 'Integer milliseconds or a string such as "500ms", "5s", "30m", "12h".' });
}

/** Duration: integer milliseconds or "500ms" / "5s" / "30m" / "12h" / "1d"; parsed to ms, at most ~24.8 days (a timer). */
export const duration = durationUpTo(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest timer Node.js can set`);
/** A cookie lifetime is no timer, only Max-Age: any duration whose milliseconds are still exact. */
const cookieTtl = durationUpTo(Number.MAX_SAFE_INTEGER, `must be at most ${Number.MAX_SAFE_INTEGER} ms`);

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);
/** Backend ids and routes go into cookies and Tomcat session-id suffixes: keep them token-safe. */
const token = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 letters, digits, "_" or "-"');

const redisUrl = z.string().regex(/^rediss?:\/\//, 'expected a redis:// URL');
const redisPool = token.optional().meta({ description: 'Name of the shared pool: the Redis keys start with "servoy-lb:<pool>:" (default "default"), so several pools can share one Redis.' });

/**
 * state.redis: a redis:// (or rediss://) URL, the same with a pool name, or Redis Sentinel
 * (sentinels and the master's name). Every instance of one pool must name the same Redis
 * and pool.
 */
const redisSettings = z
  .union([
    redisUrl.meta({ description: 'Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS), shared by several balancer instances.' }),
    z.strictObject({
      url: redisUrl.meta({ description: 'Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS).' }),
      pool: redisPool,
    }),
    z.strictObject({
      sentinels: z
        .array(z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}$/, 'expected "host:port"'))
        .min(1)
        .meta({ description: 'Redis Sentinel addresses, "host:port" each.' }),
      masterName: z.string().min(1).meta({ description: 'The name the sentinels monitor the master by (sentinel monitor NAME ...).' }),
      username: z.string().min(1).optional().meta({ description: 'Redis ACL user of the master and replicas.' }),
      password: z.string().min(1).optional().meta({ description: 'Password of the master and replicas.' }),
      sentinelPassword: z.string().min(1).optional().meta({ description: 'Password of the sentinels, when they have one.' }),
      db: z.number().int().min(0).max(65535).default(0).meta({ description: 'Database number.' }),
      tls: z.boolean().default(false).meta({ description: 'Connect to the master with TLS.' }),
      pool: redisPool,
    }),
  ])
  .meta({ description: 'Shared state of several balancer instances: a Redis URL, {url, pool}, or Redis Sentinel {sentinels, masterName, ...}.' });
/** RedisSettings is a validated `state.redis`. */
export type RedisSettings = z.output<typeof redisSettings>;

const backendUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && (url.pathname === '/' || url.pathname === '');
    } catch {
      return false;
    }
  }, 'expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"');

export const backendSchema = z
  .strictObject({
    id: token.meta({ description: 'Unique name of the backend; used in admin commands and (signed) in the affinity cookie.' }),
    url: backendUrl.meta({
      description: 'Base URL of the Servoy server, http: or https:, without a path.',
      format: 'uri',
      pattern: '^https?://[^/?#]+/?$',
      examples: ['http://10.0.0.11:8080'],
    }),
    weight: z.number().int().min(1).max(1000).default(1).meta({ description: 'Relative share of new sessions.' }),
    maxSessions: z.number().int().positive().optional().meta({ description: 'No new sessions once this many are active.' }),
    route: token.optional().meta({ description: 'Tomcat jvmRoute suffix of this server\'s session ids; defaults to id.' }),
  })
  .meta({ description: 'One Servoy server.' });

const sameSite = z.enum(['Strict', 'Lax', 'None']);

const partitionKey = z
  .strictObject({
    from: z.enum(['host', 'header', 'cookie', 'query', 'path', 'ip']).meta({ description: 'Where the partition key is read: the Host header, a header, a cookie, a query parameter, a path segment or the client address.' }),
    name: z.string().min(1).optional().meta({ description: 'Header, cookie or query parameter name.' }),
    segment: z.number().int().min(1).optional().meta({ description: 'With from "path": 1-based path segment.' }),
    pattern: z.string().optional().meta({ description: 'Regular expression with one capture group that cuts the key out of the value.' }),
    required: z.boolean().default(false).meta({ description: 'Answer 400 to a request without a partition key.' }),
  })
  .meta({ description: 'Where a request\'s partition key (tenant, customer, ...) comes from.' });

/**
 * One `paths` entry. Exactly one of affinity / allow / deny, a prefix already in normal
 * form and valid CIDRs are checked in cross-checks.ts (with the rule's index in the message).
 */
export const pathRuleSchema = z
  .strictObject({
    prefix: z.string().startsWith('/').meta({ description: 'Path prefix, decoded and case-sensitive, matched on segment boundaries: "/servoy-admin/" covers "/servoy-admin" and everything below it.', examples: ['/servoy-service/rest_ws/', '/servoy-admin/'] }),
    affinity: z.literal('none').optional().meta({ description: '"none": stateless traffic (Servoy\'s REST API): no affinity cookie, not a session, the backend with the fewest requests in flight.' }),
    allow: z.array(z.string().min(1)).min(1, 'list at least one address or CIDR (use "deny": true to refuse everyone)').optional().meta({ description: 'Only these client addresses or CIDRs may use the path; everyone else gets 403.', examples: [['10.0.0.0/8']] }),
    deny: z.literal(true, 'must be true (to let everyone use a path, leave the rule out)').optional().meta({ description: 'true: nobody may use the path (403).' }),
  })
  .meta({ description: 'A path rule: exactly one of "affinity", "allow" or "deny".' });

const secret = z.union([z.string().min(16), z.array(z.string().min(16)).min(1)]);

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'Path or URL of this JSON Schema, for editors; ignored by servoy-lb.' }),
    listen: z
      .strictObject({
        host: host.default('0.0.0.0').meta({ description: 'Address the balancer listens on for clients.' }),
        port: port.default(8080).meta({ description: 'Port the balancer listens on for clients.' }),
        tls: z
          .strictObject({
            cert: z.string().min(1).meta({ description: 'PEM certificate (chain) file, relative to this file.' }),
            key: z.string().min(1).meta({ description: 'PEM private key file, relative to this file.' }),
            redirectPort: port.optional().meta({ description: 'Adds a plain-HTTP listener on this port that redirects to HTTPS.' }),
          })
          .optional()
          .meta({ description: 'Serve HTTPS instead of HTTP.' }),
        healthPath: z
          .string()
          .startsWith('/', 'must start with "/", such as "/__servoy-lb/health"')
          .optional()
          .meta({ description: 'Path the balancer answers itself on this port with its health (as the admin API\'s /healthz: 200 or 503), never forwarded; for a cloud load balancer that cannot reach the admin port. GET and HEAD only.', examples: ['/__servoy-lb/health'] }),
        proxyProtocol: z
          .boolean()
          .default(false)
          .meta({ description: 'Accept the PROXY protocol (v1 and v2) from trustedProxies: an upstream TCP load balancer (such as a cloud network load balancer) states the client\'s address in a header before the request. A trusted peer must then send it; from anyone else a header closes the connection.' }),
      })
      .prefault({})
      .meta({ description: 'Where clients connect.' }),
    admin: z
      .strictObject({
        host: host.default('127.0.0.1').meta({ description: 'Address of the admin API and dashboard.' }),
        port: port.default(8081).meta({ description: 'Port of the admin API and dashboard.' }),
        token: z.string().min(1).optional().meta({ description: 'Bearer token for the admin API; required unless host is loopback. Use "${SERVOY_LB_TOKEN}".' }),
        allow: z
          .array(z.string().min(1))
          .min(1, 'list at least one address or CIDR (leave admin.allow out to let every peer connect)')
          .optional()
          .meta({ description: 'Only these peer addresses or CIDRs may use the admin API and dashboard (including /healthz); everyone else gets 403.', examples: [['127.0.0.1', '10.0.0.0/24']] }),
        tls: z
          .strictObject({
            cert: z.string().min(1).meta({ description: 'PEM certificate (chain) file, relative to this file.' }),
            key: z.string().min(1).meta({ description: 'PEM private key file, relative to this file.' }),
          })
          .optional()
          .meta({ description: 'Serve the admin API and dashboard over HTTPS (TLS 1.2+). The token is still required off loopback.' }),
      })
      .prefault({})
      .meta({ description: 'The admin API used by the servoy-lb commands and the dashboard.' }),
    backends: z.array(backendSchema).min(1, 'at least one backend is required').meta({ description: 'The Servoy servers; ids must be unique.' }),
    affinity: z
      .strictObject({
        mode: z.enum(['session', 'partition']).default('session').meta({ description: '"session": pin each client session; "partition": route by partition key first, then by session.' }),
        cookie: z
          .strictObject({
            name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'not a valid cookie name').default('SERVOYLB').meta({ description: 'Name of the balancer\'s affinity cookie.' }),
            secret: secret.optional().meta({ description: 'HMAC key (at least 16 characters), or a list: sign with the first, accept all.' }),
            secure: z.boolean().optional().meta({ description: 'Secure attribute; defaults to true under TLS.' }),
            sameSite: sameSite.default('Lax').meta({ description: 'SameSite attribute of the affinity cookie.' }),
            ttl: cookieTtl.optional().meta({ description: 'Makes the cookie persistent; default is a browser-session cookie.' }),
          })
          .prefault({})
          .meta({ description: 'The balancer\'s own signed affinity cookie.' }),
        sessionCookie: z.string().min(1).default('JSESSIONID').meta({ description: 'The backends\' session cookie, whose Tomcat route suffix and value pin a session.' }),
        sessionIdle: duration.default(30 * 60_000).meta({ description: 'A session without requests (and without an open WebSocket) this long no longer counts (duration).' }),
        partitionKey: partitionKey.optional(),
        partitions: z.record(z.string().min(1), token).default({}).meta({ description: 'Pins: partition key -> backend id.' }),
        balanceFactor: z.number().min(1).max(100).default(1.25).meta({ description: 'No backend takes more than this times its weighted share of active sessions.' }),
        maintenanceBackoff: duration.default(30_000).meta({ description: 'How long a backend that answered 503 (Servoy maintenance mode) takes no new sessions (duration).' }),
        failoverDelay: duration.default(30_000).meta({ description: 'How long the sessions of a backend that went down are held for it (503 + Retry-After) before they are placed anew; 0 places them anew at once (duration).' }),
        learnedSessions: z.number().int().min(0).default(100_000).meta({ description: 'Size of the table of session ids learned from backends.' }),
      })
      .prefault({})
      .meta({ description: 'How clients are pinned to backends.' }),
    paths: z
      .array(pathRuleSchema)
      .default([])
      .meta({ description: 'Path rules, matched before routing against the normalised path (longest prefix wins): stateless paths, paths only some clients may use, denied paths.' }),
    trustedProxies: z.array(z.string().min(1)).default([]).meta({ description: 'Addresses or CIDRs whose X-Forwarded-* headers are kept; everyone else\'s are replaced.' }),
    healthCheck: z
      .strictObject({
        path: z.string().startsWith('/').default('/').meta({ description: 'Path requested on each backend.' }),
        interval: duration.default(5000).meta({ description: 'Time between checks (duration).' }),
        timeout: duration.default(2000).meta({ description: 'A check that takes longer fails (duration).' }),
        rise: z.number().int().min(1).default(2).meta({ description: 'Good checks in a row that bring a down backend up.' }),
        fall: z.number().int().min(1).default(3).meta({ description: 'Failed checks in a row that take a backend down.' }),
        expectStatus: z.string().regex(/^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$/, 'expected "200" or "200-399" or a list "200,302"').default('200-399').meta({ description: 'Healthy status codes: "200", "200-399" or a list "200,302".' }),
      })
      .prefault({})
      .meta({ description: 'Active health checks of every backend.' }),
    outlier: z
      .strictObject({
        consecutiveFailures: z.number().int().min(1).default(5).meta({ description: 'Proxy errors in a row that take a backend down.' }),
        ejectFor: duration.default(30_000).meta({ description: 'How long such a backend stays out before it is tried again (duration).' }),
      })
      .prefault({})
      .meta({ description: 'Passive health: backends that fail real requests.' }),
    drain: z.strictObject({ maxWait: duration.default(2 * 3_600_000).meta({ description: 'A draining backend counts as drained after this long at the latest (duration).' }) }).prefault({}),
    timeouts: z
      .strictObject({
        connect: duration.default(5000).meta({ description: 'Connecting to a backend (duration).' }),
        response: duration.default(5 * 60_000).meta({ description: 'Waiting for a backend\'s response headers (duration).' }),
        clientIdle: duration.default(2 * 60_000).meta({ description: 'Idle client keep-alive connections are closed after this (duration).' }),
        websocketIdle: duration.default(2 * 3_600_000).meta({ description: 'A WebSocket without traffic either way is closed after this (duration).' }),
        shutdownGrace: duration.default(30_000).meta({ description: 'How long SIGTERM waits for in-flight requests.' }),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16384).meta({ description: 'Larger request headers get 431.' }),
        maxConnections: z.number().int().min(1).default(10000).meta({ description: 'Client connections accepted at once, per worker.' }),
      })
      .prefault({}),
    state: z
      .strictObject({
        file: z
          .string()
          .min(1)
          .optional()
          .meta({ description: 'State file, relative to this file (default ./servoy-lb.state.json). With redis: the local copy of the shared state is kept beside it (<file>.shared).' }),
        redis: redisSettings.optional(),
      })
      .transform((state): { file: string; redis?: RedisSettings } => ({ file: state.file ?? './servoy-lb.state.json', ...(state.redis !== undefined ? { redis: state.redis } : {}) }))
      .default({ file: './servoy-lb.state.json' })
      .meta({ description: 'Where partition assignments, admin states and the generated cookie secret are kept.' }),
    errorPages: z
      .partialRecord(z.enum(['400', '403', '404', '431', '502', '503', '504']), z.string().min(1))
      .default({})
      .meta({ description: 'HTML files (relative to this file) shown instead of the built-in error pages, by status.' }),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        access: z.boolean().default(true).meta({ description: 'Log one line per request.' }),
        format: z
          .enum(['json', 'combined'])
          .default('json')
          .meta({ description: 'Access-log format: "json" (one JSON object per line) or "combined" (Apache\'s combined log format, for GoAccess and AWStats).' }),
        file: z
          .string()
          .min(1)
          .optional()
          .meta({ description: 'Write the access log to this file (appended, relative to this file; its directory must exist) instead of stdout. SIGUSR1 reopens it (logrotate).' }),
      })
      .prefault({}),
    metrics: z.strictObject({ enabled: z.boolean().default(true).meta({ description: 'Serve Prometheus metrics on the admin API at /metrics.' }) }).prefault({}),
  })
  .meta({
    title: 'servoy-lb configuration',
    description: 'lb.config.json: the config file of servoy-lb, the sticky-session load balancer for Servoy servers. Any string value may be "${ENV_NAME}".',
  });

/** Config is the validated, defaulted configuration: durations in ms, every default filled. */
export type Config = z.output<typeof configSchema>;
/** ConfigInput is what a user may write in lb.config.json. */
export type ConfigInput = z.input<typeof configSchema>;
/** BackendConfig is one validated entry of `backends`. */
export type BackendConfig = z.output<typeof backendSchema>;
