import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, parseConfigText } from '../src/config/load.js';
import { substituteEnv } from '../src/config/env.js';
import { findSyntaxError, lineColumnAt, parseJsonText } from '../src/config/json-text.js';
import { closest, editDistance } from '../src/config/suggest.js';
import { formatJsonPath } from '../src/config/json-path.js';
import { isLoopback } from '../src/config/cross-checks.js';
import type { Config } from '../src/config/schema.js';

const BASE = '/etc/servoy-lb';
const ENV = { SERVOY_LB_TOKEN: 'admin-token', SERVOY_LB_SECRET: '0123456789abcdef-secret', HOST: '10.0.0.5', EMPTY: '' };
const backend = (id: string, port: number, extra: object = {}): object => ({ id, url: `http://127.0.0.1:${port}`, ...extra });
const minimal = { backends: [backend('servoy-a', 8091)] };

/** parse returns the config, or throws ConfigError. */
function parse(config: object | string, env: NodeJS.ProcessEnv = ENV): Config {
  return parseConfigText(typeof config === 'string' ? config : JSON.stringify(config), { env, baseDir: BASE });
}

/** problems returns the ConfigError problems of a config ([] when it is valid). */
function problems(config: object | string, env: NodeJS.ProcessEnv = ENV): string[] {
  try {
    parse(config, env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

/** withMinimal merges top-level keys into the minimal config. */
const withMinimal = (extra: object): object => ({ ...minimal, ...extra });

t.test('defaults fill every key', async (t) => {
  const config = parse(minimal);
  t.same(config, {
    listen: { host: '0.0.0.0', port: 8080, proxyProtocol: false },
    admin: { host: '127.0.0.1', port: 8081 },
    backends: [{ id: 'servoy-a', url: 'http://127.0.0.1:8091', weight: 1, route: 'servoy-a' }],
    affinity: {
      mode: 'session',
      cookie: { name: 'SERVOYLB', sameSite: 'Lax' },
      sessionCookie: 'JSESSIONID',
      sessionIdle: 1_800_000,
      partitions: {},
      balanceFactor: 1.25,
      maintenanceBackoff: 30_000,
      failoverDelay: 30_000,
      learnedSessions: 100_000,
    },
    paths: [],
    trustedProxies: [],
    healthCheck: { path: '/', interval: 5000, timeout: 2000, rise: 2, fall: 3, expectStatus: '200-399' },
    outlier: { consecutiveFailures: 5, ejectFor: 30_000 },
    drain: { maxWait: 7_200_000 },
    timeouts: { connect: 5000, response: 300_000, clientIdle: 120_000, websocketIdle: 7_200_000, shutdownGrace: 30_000 },
    limits: { maxHeaderBytes: 16384, maxConnections: 10000 },
    state: { file: resolve(BASE, 'servoy-lb.state.json') },
    errorPages: {},
    log: { level: 'info', access: true, format: 'json' },
    metrics: { enabled: true },
  });
});

t.test('explicit route is kept, missing route becomes the id', async (t) => {
  const config = parse({ backends: [backend('a', 1, { route: 'jvm1' }), backend('b', 2)] });
  t.same(config.backends.map((b) => b.route), ['jvm1', 'b']);
});

t.test('durations', async (t) => {
  const cases: { value: unknown; want: number }[] = [
    { value: 0, want: 0 },
    { value: 750, want: 750 },
    { value: '750', want: 750 },
    { value: '500ms', want: 500 },
    { value: '5s', want: 5000 },
    { value: '2.5s', want: 2500 },
    { value: '30m', want: 1_800_000 },
    { value: '12h', want: 43_200_000 },
    { value: '1d', want: 86_400_000 },
    { value: ' 5 s ', want: 5000 },
  ];
  for (const c of cases) {
    const config = parse(withMinimal({ affinity: { sessionIdle: c.value, cookie: { ttl: c.value } }, timeouts: { connect: c.value } }));
    t.equal(config.affinity.sessionIdle, c.want, `sessionIdle ${JSON.stringify(c.value)}`);
    t.equal(config.affinity.cookie.ttl, c.want, `cookie.ttl ${JSON.stringify(c.value)}`);
    t.equal(config.timeouts.connect, c.want, `timeouts.connect ${JSON.stringify(c.value)}`);
  }
  const hint = 'expected a duration: integer milliseconds or a string such as "500ms", "5s", "30m" or "12h"';
  for (const bad of ['5 sec', '1.5', '-5s', '', 'soon', 1.5, -1, true, null, ['5s'], {}]) {
    t.same(problems(withMinimal({ drain: { maxWait: bad } })), [`drain.maxWait: ${hint}`], `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('env substitution', async (t) => {
  const cases: { desc: string; value: string; env?: NodeJS.ProcessEnv; want?: string; problem?: string }[] = [
    { desc: 'whole value', value: '${SERVOY_LB_TOKEN}', want: 'admin-token' },
    { desc: 'embedded', value: 'redis://${HOST}:6379/0', want: 'redis://10.0.0.5:6379/0' },
    { desc: 'two references', value: '${HOST}-${SERVOY_LB_TOKEN}', want: '10.0.0.5-admin-token' },
    { desc: 'empty variable is set', value: 'x${EMPTY}y', want: 'xy' },
    { desc: 'no reference', value: 'plain $HOST {HOST}', want: 'plain $HOST {HOST}' },
    { desc: 'escaped', value: '$${HOST}', want: '${HOST}' },
    { desc: 'unclosed is literal', value: 'a${HOST', want: 'a${HOST' },
    { desc: 'missing', value: '${NOPE}', problem: 'admin.token: environment variable NOPE is not set' },
    { desc: 'missing inside', value: 'x-${NOPE}-y', problem: 'admin.token: environment variable NOPE is not set' },
    { desc: 'same missing twice is one problem', value: '${NOPE}${NOPE}', problem: 'admin.token: environment variable NOPE is not set' },
    {
      desc: 'malformed name',
      value: '${lower-case}',
      problem: 'admin.token: "${lower-case}" is not a valid environment variable reference (use letters, digits and "_"; write "$${" for a literal "${")',
    },
    { desc: 'empty name', value: '${}', problem: 'admin.token: "${}" is not a valid environment variable reference (use letters, digits and "_"; write "$${" for a literal "${")' },
  ];
  for (const c of cases) {
    const input = withMinimal({ admin: { token: c.value } });
    if (c.problem === undefined) t.equal(parse(input, c.env ?? ENV).admin.token, c.want, c.desc);
    else t.same(problems(input, c.env ?? ENV), [c.problem], c.desc);
  }

  t.test('reaches every string, in arrays and nested objects, but not keys', async (t) => {
    const config = parse(
      {
        backends: [{ id: 'a', url: 'http://${HOST}:8091' }],
        affinity: { cookie: { secret: ['${SERVOY_LB_SECRET}', 'old-${SERVOY_LB_SECRET}'] }, partitions: { '${HOST}': 'a' } },
        trustedProxies: ['${HOST}'],
        state: { redis: 'redis://${HOST}:6379/0' },
      },
      ENV,
    );
    t.equal(config.backends[0]!.url, 'http://10.0.0.5:8091');
    t.same(config.affinity.cookie.secret, ['0123456789abcdef-secret', 'old-0123456789abcdef-secret']);
    t.same(config.affinity.partitions, { '${HOST}': 'a' });
    t.same(config.trustedProxies, ['10.0.0.5']);
    t.same(config.state, { file: join(BASE, 'servoy-lb.state.json'), redis: 'redis://10.0.0.5:6379/0' });
  });

  t.test('every missing variable is reported, and nothing else at its path', async (t) => {
    const found = problems(withMinimal({ admin: { host: '0.0.0.0', token: '${A}' }, affinity: { cookie: { secret: '${B}' } }, state: { redis: '${C}' } }), {});
    t.same(found, [
      'admin.token: environment variable A is not set',
      'affinity.cookie.secret: environment variable B is not set',
      'state.redis: environment variable C is not set',
    ]);
  });

  t.test('an unset value is not checked again across keys', async (t) => {
    t.same(problems(withMinimal({ affinity: { partitions: { acme: '${TENANT_BACKEND}' } } }), {}), ['affinity.partitions.acme: environment variable TENANT_BACKEND is not set']);
    t.same(problems(withMinimal({ trustedProxies: ['${PROXY}'] }), {}), ['trustedProxies[0]: environment variable PROXY is not set']);
  });

  t.test('a whole "${NAME}" becomes a number or true/false where the schema wants one', async (t) => {
    const env = { PORT: '8080', APORT: '8081', WEIGHT: '3', LIMIT: '1e4', METRICS: 'false', WORD: 'eighty', YES: 'yes', HALF: '80.5', HOST: '10.0.0.5' };
    const cases: { desc: string; config: object; got?: (c: Config) => unknown; want: unknown }[] = [
      { desc: 'port', config: withMinimal({ listen: { port: '${PORT}' } }), got: (c) => c.listen.port, want: 8080 },
      { desc: 'weight', config: { backends: [backend('a', 1, { weight: '${WEIGHT}' })] }, got: (c) => c.backends[0]!.weight, want: 3 },
      { desc: 'exponent', config: withMinimal({ limits: { maxConnections: '${LIMIT}' } }), got: (c) => c.limits.maxConnections, want: 10_000 },
      { desc: 'boolean', config: withMinimal({ metrics: { enabled: '${METRICS}' } }), got: (c) => c.metrics.enabled, want: false },
      { desc: 'several at once', config: withMinimal({ listen: { port: '${PORT}' }, admin: { port: '${APORT}' }, metrics: { enabled: '${METRICS}' } }), got: (c) => [c.listen.port, c.admin.port, c.metrics.enabled], want: [8080, 8081, false] },
      { desc: 'a string field stays a string', config: withMinimal({ admin: { token: '${PORT}' } }), got: (c) => c.admin.token, want: '8080' },
      { desc: 'not a number', config: withMinimal({ listen: { port: '${WORD}' } }), want: ['listen.port: expected a number, but environment variable WORD is "eighty"'] },
      { desc: 'not true or false', config: withMinimal({ metrics: { enabled: '${YES}' } }), want: ['metrics.enabled: expected true or false, but environment variable YES is "yes"'] },
      { desc: 'a number, then checked like one', config: withMinimal({ listen: { port: '${HALF}' } }), want: ['listen.port: expected an integer, got 80.5'] },
      { desc: 'a reference inside a longer string is never coerced', config: withMinimal({ listen: { port: '${PORT}0' } }), want: ['listen.port: expected a number, got string (write 80800 without quotes)'] },
      { desc: 'a literal number in quotes stays an error', config: withMinimal({ listen: { port: '8080' } }), want: ['listen.port: expected a number, got string (write 8080 without quotes)'] },
      { desc: 'a literal boolean in quotes stays an error', config: withMinimal({ metrics: { enabled: 'true' } }), want: ['metrics.enabled: expected true or false, got string (write true without quotes)'] },
      { desc: 'an unset variable is reported once', config: withMinimal({ listen: { port: '${NOPE}' } }), want: ['listen.port: environment variable NOPE is not set'] },
    ];
    for (const c of cases) {
      if (c.got !== undefined) t.same(c.got(parse(c.config, env)), c.want, c.desc);
      else t.same(problems(c.config, env), c.want, c.desc);
    }
  });

  t.test('defaults to process.env', async (t) => {
    process.env.SERVOY_LB_TEST_VALUE = 'from-process-env';
    t.teardown(() => delete process.env.SERVOY_LB_TEST_VALUE);
    const config = parseConfigText(JSON.stringify(withMinimal({ admin: { token: '${SERVOY_LB_TEST_VALUE}' } })), { baseDir: BASE });
    t.equal(config.admin.token, 'from-process-env');
  });

  t.test('substituteEnv leaves non-strings alone', async (t) => {
    const result = substituteEnv({ n: 1, b: true, z: null, list: [2, '${HOST}'] }, ENV);
    t.same(result.value, { n: 1, b: true, z: null, list: [2, '10.0.0.5'] });
    t.same(result.problems, []);
  });
});

t.test('friendly schema messages', async (t) => {
  const cases: { desc: string; config: object; want: string[] }[] = [
    { desc: 'unknown key with suggestion', config: { backends: [backend('a', 1, { wieght: 2 })] }, want: ['backends[0].wieght: unknown key (did you mean "weight"?)'] },
    { desc: 'unknown key, case slip', config: withMinimal({ Listen: {} }), want: ['Listen: unknown key (did you mean "listen"?)'] },
    { desc: 'unknown nested key', config: withMinimal({ healthCheck: { intervall: '5s' } }), want: ['healthCheck.intervall: unknown key (did you mean "interval"?)'] },
    { desc: 'unknown key, no close match, short list', config: withMinimal({ drain: { whenever: 1 } }), want: ['drain.whenever: unknown key (expected one of "maxWait")'] },
    { desc: 'unknown key at root, no close match', config: withMinimal({ zzzzzz: 1 }), want: ['zzzzzz: unknown key'] },
    { desc: 'no suggestion of a key already present', config: withMinimal({ backend: 1 }), want: ['backend: unknown key'] },
    { desc: 'two unknown keys', config: { backends: [backend('a', 1, { wieght: 1, rout: 'x' })] }, want: ['backends[0].wieght: unknown key (did you mean "weight"?)', 'backends[0].rout: unknown key (did you mean "route"?)'] },
    { desc: 'unknown key in the state union', config: withMinimal({ state: { fil: 'x' } }), want: ['state.fil: unknown key (did you mean "file"?)'] },
    { desc: 'unknown error page status', config: withMinimal({ errorPages: { 500: 'x.html' } }), want: ['errorPages.500: unknown key (expected one of "400", "403", "404", "431", "502", "503", "504")'] },
    { desc: 'type: number', config: withMinimal({ listen: { port: '80' } }), want: ['listen.port: expected a number, got string (write 80 without quotes)'] },
    { desc: 'type: integer', config: withMinimal({ listen: { port: 80.5 } }), want: ['listen.port: expected an integer, got 80.5'] },
    { desc: 'type: boolean', config: withMinimal({ metrics: { enabled: 'yes' } }), want: ['metrics.enabled: expected true or false, got string'] },
    { desc: 'type: object', config: withMinimal({ listen: 8080 }), want: ['listen: expected an object, got number'] },
    { desc: 'type: list', config: withMinimal({ trustedProxies: '10.0.0.0/8' }), want: ['trustedProxies: expected a list, got string'] },
    { desc: 'type: null', config: withMinimal({ admin: { token: null } }), want: ['admin.token: expected a string, got null'] },
    { desc: 'type: array given', config: withMinimal({ log: [] }), want: ['log: expected an object, got array'] },
    { desc: 'enum', config: withMinimal({ affinity: { mode: 'sticky' } }), want: ['affinity.mode: expected one of "session", "partition"'] },
    { desc: 'enum with suggestion', config: withMinimal({ affinity: { cookie: { sameSite: 'lax' } } }), want: ['affinity.cookie.sameSite: expected one of "Strict", "Lax", "None" (did you mean "Lax"?)'] },
    { desc: 'missing required', config: {}, want: ['backends: missing (required)'] },
    { desc: 'missing backend keys', config: { backends: [{}] }, want: ['backends[0].id: missing (required)', 'backends[0].url: missing (required)'] },
    { desc: 'empty backends', config: { backends: [] }, want: ['backends: at least one backend is required'] },
    { desc: 'bad url', config: { backends: [{ id: 'a', url: 'ftp://x' }] }, want: ['backends[0].url: expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"'] },
    { desc: 'not a url', config: { backends: [{ id: 'a', url: 'servoy-a:8080 ' }] }, want: ['backends[0].url: expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"'] },
    { desc: 'url with path', config: { backends: [{ id: 'a', url: 'http://x/servoy' }] }, want: ['backends[0].url: expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"'] },
    { desc: 'bad id', config: { backends: [{ id: 'a b', url: 'http://x' }] }, want: ['backends[0].id: use 1-64 letters, digits, "_" or "-"'] },
    { desc: 'too small number', config: withMinimal({ healthCheck: { rise: 0 } }), want: ['healthCheck.rise: must be at least 1'] },
    { desc: 'too big number', config: withMinimal({ listen: { port: 70000 } }), want: ['listen.port: must be at most 65535'] },
    { desc: 'positive', config: { backends: [backend('a', 1, { maxSessions: 0 })] }, want: ['backends[0].maxSessions: must be greater than 0'] },
    { desc: 'empty string', config: withMinimal({ listen: { host: '' } }), want: ['listen.host: must not be empty'] },
    { desc: 'short secret', config: withMinimal({ affinity: { cookie: { secret: 'short' } } }), want: ['affinity.cookie.secret: must be at least 16 characters long'] },
    { desc: 'short secret in a list', config: withMinimal({ affinity: { cookie: { secret: ['0123456789abcdef', 'short'] } } }), want: ['affinity.cookie.secret[1]: must be at least 16 characters long'] },
    { desc: 'secret of the wrong type', config: withMinimal({ affinity: { cookie: { secret: 42 } } }), want: ['affinity.cookie.secret: expected a string or a list, got number'] },
    { desc: 'empty secret list', config: withMinimal({ affinity: { cookie: { secret: [] } } }), want: ['affinity.cookie.secret: must not be empty'] },
    { desc: 'starts with', config: withMinimal({ healthCheck: { path: 'health' } }), want: ['healthCheck.path: must start with "/"'] },
    { desc: 'custom regex message', config: withMinimal({ healthCheck: { expectStatus: '2xx' } }), want: ['healthCheck.expectStatus: expected "200" or "200-399" or a list "200,302"'] },
    { desc: 'bad cookie name', config: withMinimal({ affinity: { cookie: { name: 'a b' } } }), want: ['affinity.cookie.name: not a valid cookie name'] },
    { desc: 'redis url', config: withMinimal({ state: { redis: 'http://x' } }), want: ['state.redis: expected a redis:// URL'] },
    { desc: 'state of the wrong type', config: withMinimal({ state: 'x.json' }), want: ['state: expected an object, got string'] },
    { desc: 'empty partition key', config: withMinimal({ affinity: { partitions: { '': 'servoy-a' } } }), want: ['affinity.partitions[""]: invalid key: must not be empty'] },
    { desc: 'partition pin not a token', config: withMinimal({ affinity: { partitions: { 'acme.example': 'a b' } } }), want: ['affinity.partitions["acme.example"]: use 1-64 letters, digits, "_" or "-"'] },
    { desc: 'log level', config: withMinimal({ log: { level: 'verbose' } }), want: ['log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent"'] },
  ];
  for (const c of cases) t.same(problems(c.config), c.want, c.desc);
});

t.test('the top level must be an object', async (t) => {
  t.same(problems('[]'), ['(file): expected an object, got array']);
  t.same(problems('null'), ['(file): expected an object, got null']);
});

t.test('cross-field checks', async (t) => {
  const cases: { desc: string; config: object; want: string[] }[] = [
    {
      desc: 'duplicate ids',
      config: { backends: [backend('a', 1), backend('b', 2), backend('a', 3)] },
      want: ['backends[2].id: duplicate id "a" (also backends[0])'],
    },
    {
      desc: 'explicit route collides with an id',
      config: { backends: [backend('a', 1), backend('b', 2, { route: 'a' })] },
      want: ['backends[1].route: route "a" is already used by backends[0] (routes default to the id and must be unique)'],
    },
    {
      desc: 'default route collides with an explicit route',
      config: { backends: [backend('a', 1, { route: 'b' }), backend('b', 2)] },
      want: ['backends[1].id: route "b" is already used by backends[0] (routes default to the id and must be unique)'],
    },
    { desc: 'same server twice', config: { backends: [backend('a', 1), { id: 'b', url: 'http://127.0.0.1:1/' }] }, want: ['backends[1].url: same server as backends[0] (http://127.0.0.1:1)'] },
    {
      desc: 'partition pinned to an unknown backend',
      config: withMinimal({ affinity: { partitions: { acme: 'servoy-a', 'globex.example': 'servoy-z' } } }),
      want: ['affinity.partitions["globex.example"]: unknown backend "servoy-z" (not in backends)'],
    },
    {
      desc: 'partition mode without partitionKey',
      config: withMinimal({ affinity: { mode: 'partition' } }),
      want: ['affinity.partitionKey: required when affinity.mode is "partition" (it says where the partition key comes from)'],
    },
    ...(['header', 'cookie', 'query'] as const).map((from) => ({
      desc: `from ${from} without name`,
      config: withMinimal({ affinity: { partitionKey: { from } } }),
      want: [`affinity.partitionKey.name: required when from is "${from}" (the ${from} name)`],
    })),
    { desc: 'from path without segment', config: withMinimal({ affinity: { partitionKey: { from: 'path' } } }), want: ['affinity.partitionKey.segment: required when from is "path" (the 1-based path segment number)'] },
    {
      desc: 'name and segment where they mean nothing',
      config: withMinimal({ affinity: { partitionKey: { from: 'host', name: 'X', segment: 1 } } }),
      want: ['affinity.partitionKey.name: only used with from "header", "cookie" or "query", not "host"', 'affinity.partitionKey.segment: only used with from "path", not "host"'],
    },
    { desc: 'pattern that does not compile', config: withMinimal({ affinity: { partitionKey: { from: 'host', pattern: '^([a-z]+' } } }), want: ['affinity.partitionKey.pattern: not a valid regular expression: /^([a-z]+/: Unterminated group'] },
    { desc: 'pattern without a group', config: withMinimal({ affinity: { partitionKey: { from: 'host', pattern: '^[a-z]+' } } }), want: ['affinity.partitionKey.pattern: must have exactly one capture group (the key), found 0'] },
    { desc: 'pattern with two groups', config: withMinimal({ affinity: { partitionKey: { from: 'host', pattern: '^(a)(b)' } } }), want: ['affinity.partitionKey.pattern: must have exactly one capture group (the key), found 2'] },
    {
      desc: 'admin on a public address without token',
      config: withMinimal({ admin: { host: '0.0.0.0' } }),
      want: ['admin.token: required because admin.host "0.0.0.0" is not a loopback address (start refuses an open admin API without a token)'],
    },
    { desc: 'admin port equals listen port', config: withMinimal({ listen: { port: 9000 }, admin: { port: 9000 } }), want: ['admin.port: same port as listen.port (9000)'] },
    { desc: 'redirect port equals listen port', config: withMinimal({ listen: { port: 443, tls: { cert: 'c', key: 'k', redirectPort: 443 } } }), want: ['listen.tls.redirectPort: same port as listen.port (443)'] },
    { desc: 'redirect port equals admin port', config: withMinimal({ listen: { port: 443, tls: { cert: 'c', key: 'k', redirectPort: 8081 } } }), want: ['listen.tls.redirectPort: same port as admin.port (8081)'] },
    { desc: 'redirectPort without tls', config: withMinimal({ listen: { redirectPort: 80 } }), want: ['listen.redirectPort: unknown key (expected one of "host", "port", "tls", "healthPath", "proxyProtocol")'] },
    { desc: 'proxyProtocol without trustedProxies', config: withMinimal({ listen: { proxyProtocol: true } }), want: ['listen.proxyProtocol: needs trustedProxies: the addresses of the load balancers that send the PROXY header (it is accepted from no one else)'] },
    { desc: 'healthPath without a leading slash', config: withMinimal({ listen: { healthPath: 'health' } }), want: ['listen.healthPath: must start with "/", such as "/__servoy-lb/health"'] },
    {
      desc: 'admin.allow',
      config: withMinimal({ admin: { allow: ['127.0.0.1', '10.0.0.0/33', 'admin.local'] } }),
      want: ['admin.allow[1]: "10.0.0.0/33" is not an IP address or CIDR such as "10.0.0.0/8"', 'admin.allow[2]: "admin.local" is not an IP address or CIDR such as "10.0.0.0/8"'],
    },
    { desc: 'empty admin.allow', config: withMinimal({ admin: { allow: [] } }), want: ['admin.allow: list at least one address or CIDR (leave admin.allow out to let every peer connect)'] },
    { desc: 'SameSite None with secure false', config: withMinimal({ affinity: { cookie: { sameSite: 'None', secure: false } } }), want: ['affinity.cookie.secure: must not be false with sameSite "None" (browsers drop such a cookie)'] },
    {
      desc: 'affinity cookie named like the session cookie',
      config: withMinimal({ affinity: { cookie: { name: 'JSESSIONID' } } }),
      want: ['affinity.cookie.name: must differ from affinity.sessionCookie ("JSESSIONID"), the backend\'s own session cookie'],
    },
    {
      desc: 'trusted proxies',
      config: withMinimal({ trustedProxies: ['10.0.0.0/8', '::1', 'fd00::/8', '10.0.0.0/33', 'proxy.local', '1.2.3.4/8/8', '1.2.3.4/x'] }),
      want: [
        'trustedProxies[3]: "10.0.0.0/33" is not an IP address or CIDR such as "10.0.0.0/8"',
        'trustedProxies[4]: "proxy.local" is not an IP address or CIDR such as "10.0.0.0/8"',
        'trustedProxies[5]: "1.2.3.4/8/8" is not an IP address or CIDR such as "10.0.0.0/8"',
        'trustedProxies[6]: "1.2.3.4/x" is not an IP address or CIDR such as "10.0.0.0/8"',
      ],
    },
    { desc: 'reversed status range', config: withMinimal({ healthCheck: { expectStatus: '200,399-200' } }), want: ['healthCheck.expectStatus: "399-200" is not an HTTP status or range between 100 and 599'] },
    { desc: 'status out of range', config: withMinimal({ healthCheck: { expectStatus: '000' } }), want: ['healthCheck.expectStatus: "000" is not an HTTP status or range between 100 and 599'] },
    {
      desc: 'several problems at once',
      config: { backends: [backend('a', 1), backend('a', 2)], admin: { host: '10.0.0.1' }, affinity: { partitions: { x: 'nope' } } },
      want: [
        'backends[1].id: duplicate id "a" (also backends[0])',
        'affinity.partitions.x: unknown backend "nope" (not in backends)',
        'admin.token: required because admin.host "10.0.0.1" is not a loopback address (start refuses an open admin API without a token)',
      ],
    },
  ];
  for (const c of cases) t.same(problems(c.config), c.want, c.desc);

  const valid: { desc: string; config: object }[] = [
    { desc: 'admin on loopback without token', config: withMinimal({ admin: { host: '127.0.0.2' } }) },
    { desc: 'admin on a public address with token', config: withMinimal({ admin: { host: '0.0.0.0', token: '${SERVOY_LB_TOKEN}' } }) },
    { desc: 'same port on different addresses', config: withMinimal({ listen: { host: '10.0.0.1', port: 8080 }, admin: { host: '127.0.0.1', port: 8080 } }) },
    { desc: 'both on port 0', config: withMinimal({ listen: { port: 0 }, admin: { port: 0 } }) },
    { desc: 'partition mode with header key', config: withMinimal({ affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' }, partitions: { acme: 'servoy-a' } } }) },
    { desc: 'path key with pattern', config: withMinimal({ affinity: { mode: 'partition', partitionKey: { from: 'path', segment: 1, pattern: '^tenant-(?<id>\\w+)$' } } }) },
    { desc: 'non-capturing groups do not count', config: withMinimal({ affinity: { partitionKey: { from: 'ip', pattern: '^(?:10\\.)(\\d+)' } } }) },
    { desc: 'SameSite None with secure true', config: withMinimal({ affinity: { cookie: { sameSite: 'None', secure: true } } }) },
    { desc: 'routes distinct from ids', config: { backends: [backend('a', 1, { route: 'b' }), backend('b', 2, { route: 'a' })] } },
  ];
  for (const c of valid) t.same(problems(c.config), [], `valid: ${c.desc}`);
});

t.test('isLoopback', async (t) => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['127.example.com', false],
    ['admin.example.com', false],
  ];
  for (const [host, want] of cases) t.equal(isLoopback(host), want, host);
});

t.test('broken JSON is reported with line and column', async (t) => {
  const cases: { desc: string; text: string; want: string }[] = [
    { desc: 'trailing comma', text: '{\n  "backends": [],\n}', want: '(file): invalid JSON at line 3, column 1: expected double-quoted property name (JSON does not allow a comma before a closing bracket)' },
    { desc: 'missing comma', text: '{\n  "a": 1\n  "b": 2\n}', want: "(file): invalid JSON at line 3, column 3: expected ',' or '}' after property value" },
    { desc: 'comment', text: '{\n  // backends\n  "backends": []\n}', want: "(file): invalid JSON at line 2, column 3: expected property name or '}' (JSON does not allow comments)" },
    { desc: 'empty file', text: '', want: '(file): invalid JSON at line 1, column 1: unexpected end of JSON input' },
    { desc: 'truncated', text: '{\n  "backends": [\n', want: '(file): invalid JSON at line 3, column 1: unexpected end of JSON input' },
    { desc: 'bad literal', text: '{\n "a": tru }', want: "(file): invalid JSON at line 2, column 7: unexpected token ' '" },
    { desc: 'windows line ends', text: '{\r\n  "a": 1\r\n  "b": 2\r\n}', want: "(file): invalid JSON at line 3, column 3: expected ',' or '}' after property value" },
  ];
  for (const c of cases) t.same(problems(c.text), [c.want], c.desc);
  t.same(problems(`\ufeff${JSON.stringify(minimal)}`), [], 'a byte-order mark is ignored');
  t.match(parseJsonText('{"a": tru}'), { ok: false, problem: /^\(file\): invalid JSON at line 1, column 7: unexpected token/ }, 'message without a position');
});

t.test('findSyntaxError locates what JSON.parse does not', async (t) => {
  const cases: [string, number][] = [
    ['{"a": [1, 2.5e3, -0, true, false, null, "x\\n\\u00e9"]}', 53],
    ['', 0],
    ['   ', 3],
    ['{', 1],
    ['{"a" 1}', 5],
    ['{"a": 1,}', 8],
    ['[1 2]', 3],
    ['[1,]', 3],
    ['{"a": tru}', 6],
    ['"abc', 4],
    ['"a\\x"', 3],
    ['"\\u12g4"', 2],
    ['"a\tb"', 2],
    ['{} {}', 3],
    ['01', 1],
    ['[]', 2],
    ['{ }', 3],
  ];
  for (const [text, want] of cases) t.equal(findSyntaxError(text), want, JSON.stringify(text));
  t.same(lineColumnAt('ab\ncd\n', 4), { line: 2, column: 2 });
  t.same(lineColumnAt('ab', 99), { line: 1, column: 3 });
});

t.test('relative file paths are resolved against the config directory', async (t) => {
  const config = parse(
    withMinimal({
      listen: { tls: { cert: 'tls/cert.pem', key: '/abs/key.pem' } },
      admin: { tls: { cert: 'admin/cert.pem', key: '/abs/admin-key.pem' } },
      state: { file: '../state/lb.state.json' },
      errorPages: { 503: './pages/maintenance.html', 502: '/srv/502.html' },
    }),
  );
  t.same(config.listen.tls, { cert: join(BASE, 'tls/cert.pem'), key: '/abs/key.pem' });
  t.same(config.admin.tls, { cert: join(BASE, 'admin/cert.pem'), key: '/abs/admin-key.pem' });
  t.same(config.state, { file: resolve(BASE, '../state/lb.state.json') });
  t.same(config.errorPages, { 503: join(BASE, 'pages/maintenance.html'), 502: '/srv/502.html' });
  t.same(parse(withMinimal({ state: { redis: 'redis://127.0.0.1:6379/0' } })).state, { file: join(BASE, 'servoy-lb.state.json'), redis: 'redis://127.0.0.1:6379/0' }, 'redis is no path; the local copy of the shared state goes beside the default state file');
  t.same(parse(withMinimal({ state: { file: '../state/lb.state.json', redis: 'redis://127.0.0.1:6379/0' } })).state, { file: resolve(BASE, '../state/lb.state.json'), redis: 'redis://127.0.0.1:6379/0' }, 'with redis, file says where the local copy goes');
});

t.test('loadConfig', async (t) => {
  const dir = t.testdir({
    'good.json': JSON.stringify(withMinimal({ errorPages: { 503: 'm.html' } })),
    'bad.json': JSON.stringify({ backends: [backend('a', 1, { wieght: 1 })], listen: { port: 'x' } }),
    sub: {},
  });

  t.test('reads, validates and resolves against the file directory', async (t) => {
    const cwd = process.cwd();
    process.chdir(dir);
    t.teardown(() => process.chdir(cwd));
    const { config, file } = await loadConfig('good.json', ENV);
    t.equal(file, join(dir, 'good.json'));
    t.same(config.errorPages, { 503: join(dir, 'm.html') });
    t.equal(config.state.constructor, Object);
    t.same(config.state, { file: join(dir, 'servoy-lb.state.json') });
  });

  t.test('problems carry the absolute file', async (t) => {
    const err = await loadConfig(join(dir, 'bad.json'), ENV).catch((e: unknown) => e);
    t.ok(err instanceof ConfigError);
    const configError = err as ConfigError;
    t.equal(configError.file, join(dir, 'bad.json'));
    t.same(configError.problems, ['listen.port: expected a number, got string', 'backends[0].wieght: unknown key (did you mean "weight"?)']);
    t.equal(configError.message, `invalid config file ${join(dir, 'bad.json')} (2 problems)`);
  });

  const failures: { desc: string; file: string; want: string }[] = [
    { desc: 'missing file', file: join(dir, 'nope.json'), want: `(file): config file ${join(dir, 'nope.json')} does not exist (name another one with -c FILE)` },
    { desc: 'a directory', file: join(dir, 'sub'), want: `(file): ${join(dir, 'sub')} is a directory, not a config file` },
  ];
  for (const c of failures) {
    const err = await loadConfig(c.file, ENV).catch((e: unknown) => e);
    t.ok(err instanceof ConfigError, c.desc);
    t.same((err as ConfigError).problems, [c.want], c.desc);
    t.equal((err as ConfigError).message, `invalid config file ${c.file} (1 problem)`, c.desc);
  }

  t.test('an unreadable file', { skip: process.getuid?.() === 0 ? 'root reads every file' : false }, async (t) => {
    const file = join(dir, 'secret.json');
    writeFileSync(file, '{}', { mode: 0o000 });
    const err = (await loadConfig(file, ENV).catch((e: unknown) => e)) as ConfigError;
    t.same(err.problems, [`(file): config file ${file} is not readable (permission denied)`]);
  });
});

t.test('ConfigError without a file', async (t) => {
  const err = new ConfigError(['a: b']);
  t.equal(err.message, 'invalid config (1 problem)');
  t.equal(err.name, 'ConfigError');
  t.equal(err.file, undefined);
});

t.test('shipped configs are valid', async (t) => {
  const root = resolve(import.meta.dirname, '..');
  const demo = await loadConfig(join(root, 'lb.config.json'), {});
  t.same(demo.config.backends.map((b) => [b.id, b.url]), [
    ['servoy-a', 'http://127.0.0.1:8091'],
    ['servoy-b', 'http://127.0.0.1:8092'],
    ['servoy-c', 'http://127.0.0.1:8093'],
  ]);
  t.same([demo.config.listen.host, demo.config.listen.port, demo.config.admin.host, demo.config.admin.port], ['127.0.0.1', 8080, '127.0.0.1', 8081]);
  t.equal(demo.config.healthCheck.path, '/');
  t.same(demo.config.state, { file: join(root, 'servoy-lb.state.json') });

  const full = await loadConfig(join(root, 'examples/lb.config.full.json'), ENV);
  t.equal(full.config.admin.token, 'admin-token');
  t.equal(full.config.affinity.cookie.secret, ENV.SERVOY_LB_SECRET);
  t.same(full.config.listen.tls?.cert, join(root, 'examples/tls/cert.pem'));
  const unset = await loadConfig(join(root, 'examples/lb.config.full.json'), {}).catch((e: unknown) => e);
  t.same((unset as ConfigError).problems, ['admin.token: environment variable SERVOY_LB_TOKEN is not set', 'affinity.cookie.secret: environment variable SERVOY_LB_SECRET is not set']);
});

t.test('the SPEC example config is valid', async (t) => {
  const spec = {
    listen: { host: '0.0.0.0', port: 8080, tls: { cert: 'cert.pem', key: 'key.pem' } },
    admin: { host: '127.0.0.1', port: 8081, token: '${SERVOY_LB_TOKEN}' },
    backends: [
      { id: 'servoy-a', url: 'http://10.0.0.11:8080', weight: 1, maxSessions: 500, route: 'servoy-a' },
      { id: 'servoy-b', url: 'http://10.0.0.12:8080' },
    ],
    affinity: {
      mode: 'session',
      cookie: { name: 'SERVOYLB', secret: '${SERVOY_LB_SECRET}', secure: false, sameSite: 'Lax' },
      sessionCookie: 'JSESSIONID',
      sessionIdle: '30m',
      partitionKey: { from: 'header', name: 'X-Tenant' },
      partitions: { acme: 'servoy-a' },
      balanceFactor: 1.25,
      maintenanceBackoff: '30s',
    },
    paths: [
      { prefix: '/servoy-service/rest_ws/', affinity: 'none' },
      { prefix: '/servoy-admin/', allow: ['10.0.0.0/8'] },
    ],
    trustedProxies: [],
    healthCheck: { path: '/', interval: '5s', timeout: '2s', rise: 2, fall: 3, expectStatus: '200-399' },
    outlier: { consecutiveFailures: 5, ejectFor: '30s' },
    drain: { maxWait: '2h' },
    timeouts: { connect: '5s', response: '5m', clientIdle: '2m', websocketIdle: '2h' },
    limits: { maxHeaderBytes: 16384, maxConnections: 10000 },
    state: { file: './servoy-lb.state.json' },
    errorPages: { 503: './maintenance.html' },
    log: { level: 'info', access: true },
    metrics: { enabled: true },
  };
  t.same(problems(spec), []);
  t.same(problems({ ...spec, $schema: './schema/lb.config.schema.json' }), [], '$schema is allowed');
});

t.test('path rules', async (t) => {
  const paths = (rules: unknown) => problems(withMinimal({ paths: rules }));
  t.same(
    paths([
      { prefix: '/servoy-service/rest_ws/', affinity: 'none' },
      { prefix: '/servoy-admin/', allow: ['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8'] },
      { prefix: '/servoy-developer/', deny: true },
      { prefix: '/', affinity: 'none' },
      { prefix: '/my app/caf\u00e9', deny: true },
    ]),
    [],
    'valid rules',
  );
  t.same(parse(withMinimal({ paths: [{ prefix: '/a/', deny: true }] })).paths, [{ prefix: '/a/', deny: true }], 'kept as written');
  const cases: { desc: string; rules: unknown; want: string[] }[] = [
    { desc: 'not a list', rules: '/a', want: ['paths: expected a list, got string'] },
    { desc: 'prefix missing', rules: [{ deny: true }], want: ['paths[0].prefix: missing (required)'] },
    { desc: 'prefix without "/"', rules: [{ prefix: 'servoy-admin/', deny: true }], want: ['paths[0].prefix: must start with "/"'] },
    { desc: 'unknown key', rules: [{ prefix: '/a', allowed: ['10.0.0.0/8'] }], want: ['paths[0].allowed: unknown key (did you mean "allow"?)'] },
    { desc: 'no action', rules: [{ prefix: '/a' }], want: ['paths[0]: a rule needs one of "affinity": "none", "allow": [CIDR, ...] or "deny": true'] },
    { desc: 'two actions', rules: [{ prefix: '/a', deny: true, allow: ['10.0.0.0/8'] }], want: ['paths[0]: a rule does one thing: "allow" and "deny" cannot be combined (write two rules)'] },
    { desc: 'affinity other than none', rules: [{ prefix: '/a', affinity: 'sticky' }], want: ['paths[0].affinity: expected "none", got "sticky"'] },
    { desc: 'deny false', rules: [{ prefix: '/a', deny: false }], want: ['paths[0].deny: must be true (to let everyone use a path, leave the rule out)'] },
    { desc: 'empty allow list', rules: [{ prefix: '/a', allow: [] }], want: ['paths[0].allow: list at least one address or CIDR (use "deny": true to refuse everyone)'] },
    {
      desc: 'bad CIDRs',
      rules: [{ prefix: '/a', allow: ['10.0.0.0/33', 'intranet', '10.0.0.0/8', '::1/129'] }],
      want: [
        'paths[0].allow[0]: "10.0.0.0/33" is not an IP address or CIDR such as "10.0.0.0/8"',
        'paths[0].allow[1]: "intranet" is not an IP address or CIDR such as "10.0.0.0/8"',
        'paths[0].allow[3]: "::1/129" is not an IP address or CIDR such as "10.0.0.0/8"',
      ],
    },
    { desc: 'duplicate prefix, trailing slash aside', rules: [{ prefix: '/a/', deny: true }, { prefix: '/a', affinity: 'none' }], want: ['paths[1].prefix: same prefix as paths[0] (a trailing "/" makes no difference)'] },
    { desc: 'encoded prefix', rules: [{ prefix: '/my%20app/', deny: true }], want: ['paths[0].prefix: write the path decoded, as Tomcat sees it ("/my app/", not "/my%20app/"): "%" is not allowed'] },
    { desc: 'repeated slash', rules: [{ prefix: '/a//b', deny: true }], want: ['paths[0].prefix: must not contain "//" (requests are matched with repeated "/" merged)'] },
    { desc: 'dot segment', rules: [{ prefix: '/a/../b/', deny: true }], want: ['paths[0].prefix: must not contain "." or ".." segments (requests are matched with them resolved)'] },
    { desc: 'path parameter', rules: [{ prefix: '/a;jsessionid=x', deny: true }], want: ['paths[0].prefix: must be a plain path: no ";", "?", "#" or "\\"'] },
    { desc: 'query', rules: [{ prefix: '/a?x', deny: true }], want: ['paths[0].prefix: must be a plain path: no ";", "?", "#" or "\\"'] },
    { desc: 'control character', rules: [{ prefix: '/a\tb', deny: true }], want: ['paths[0].prefix: must not contain control characters'] },
  ];
  for (const c of cases) t.same(paths(c.rules), c.want, c.desc);
});

t.test('formatJsonPath', async (t) => {
  const cases: [PropertyKey[], string][] = [
    [[], '(file)'],
    [['listen', 'port'], 'listen.port'],
    [['backends', 0, 'url'], 'backends[0].url'],
    [['errorPages', '503'], 'errorPages.503'],
    [['affinity', 'partitions', 'acme.example'], 'affinity.partitions["acme.example"]'],
    [['affinity', 'partitions', 'acme-corp'], 'affinity.partitions.acme-corp'],
    [['$schema'], '$schema'],
    [[0], '[0]'],
  ];
  for (const [path, want] of cases) t.equal(formatJsonPath(path), want, want);
});

t.test('suggestions', async (t) => {
  t.equal(editDistance('', 'abc'), 3);
  t.equal(editDistance('wieght', 'weight'), 1, 'a swap is one edit');
  t.equal(editDistance('kitten', 'sitting'), 3);
  const keys = ['weight', 'maxSessions', 'route', 'url', 'id'];
  t.equal(closest('wieght', keys), 'weight');
  t.equal(closest('maxsessions', keys), 'maxSessions');
  t.equal(closest('rout', keys), 'route');
  t.equal(closest('ur', keys), 'url');
  t.equal(closest('colour', keys), undefined);
  t.equal(closest('x', []), undefined);
});

t.test('config written to disk round-trips through a sub directory', async (t) => {
  const dir = t.testdir({ conf: { 'lb.json': JSON.stringify(withMinimal({ listen: { tls: { cert: 'c.pem', key: 'k.pem' } } })) } });
  mkdirSync(join(dir, 'conf', 'empty'));
  const { config } = await loadConfig(join(dir, 'conf', 'lb.json'), {});
  t.same(config.listen.tls, { cert: join(dir, 'conf', 'c.pem'), key: join(dir, 'conf', 'k.pem') });
});
