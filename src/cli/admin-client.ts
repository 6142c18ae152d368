/**
 * How the admin commands (status, drain, ...) reach a running balancer: find its admin
 * API and token, make one call, and turn every failure into a CliError with the exit code
 * SPEC promises (2: unreachable or refused; 1: bad usage or config).
 *
 * The API is found, first match wins, from `--admin URL` / `SERVOY_LB_ADMIN`, else from
 * the config file's admin.host and admin.port (`-c FILE`, default ./lb.config.json); the
 * token from `--token T` / `SERVOY_LB_TOKEN`, else admin.token of that file.
 *
 * An https admin API (admin.tls) is verified like any TLS server, never silently trusted:
 * against `--ca FILE` / `SERVOY_LB_CA` (a CA or the self-signed certificate itself), else,
 * when the API was found from the config file, against admin.tls.cert of that file, else
 * against the system's CAs.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { ConfigError, loadConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { parseJsonText } from '../config/json-text.js';
import { substituteEnv } from '../config/env.js';
import { CliError } from './cli-error.js';
import { DEFAULT_CONFIG } from './validate.js';

/** AdminOptions are the options every admin command shares (see addAdminOptions). */
export interface AdminOptions {
  config?: string;
  admin?: string;
  token?: string;
  ca?: string;
}

/** AdminTarget is a resolved admin API: base URL (no trailing slash) and token, if any. */
export interface AdminTarget {
  readonly url: string;
  readonly token: string | undefined;
  /** PEM certificates that an https admin API must chain to; undefined: the system's CAs. */
  readonly ca?: Buffer | undefined;
}

/** How long one admin call may take (a reload re-reads the config; nothing takes longer). */
export const ADMIN_TIMEOUT_MS = 30_000;

/** addAdminOptions gives a command the shared -c / --admin / --token options. */
export function addAdminOptions(command: Command): Command {
  return command
    .option('-c, --config <FILE>', `config file naming the admin API (admin.host, admin.port, admin.token) (default: ${DEFAULT_CONFIG})`)
    .option('--admin <URL>', 'admin API URL such as http://127.0.0.1:8081 (or env SERVOY_LB_ADMIN); overrides the config file')
    .option('--token <TOKEN>', 'admin token (or env SERVOY_LB_TOKEN, which stays out of the process list); overrides admin.token')
    .option('--ca <FILE>', 'PEM file of the CA (or the self-signed certificate) an https admin API must present (or env SERVOY_LB_CA); default: admin.tls.cert of the config file, else the system CAs');
}

/** resolveTarget finds the admin API and token from options, environment, then config file. */
export async function resolveTarget(options: AdminOptions, env: NodeJS.ProcessEnv = process.env): Promise<AdminTarget> {
  const given = options.admin ?? nonEmpty(env.SERVOY_LB_ADMIN);
  const token = options.token ?? nonEmpty(env.SERVOY_LB_TOKEN);
  const caFile = options.ca ?? nonEmpty(env.SERVOY_LB_CA);
  const ca = caFile === undefined ? undefined : await readCa(caFile, options.ca !== undefined ? '--ca' : 'SERVOY_LB_CA');
  if (given !== undefined) {
    const url = normalizeUrl(given, options.admin !== undefined ? '--admin' : 'SERVOY_LB_ADMIN');
    // An explicit -c still supplies the token (and the certificate) when none was given otherwise.
    const https = url.startsWith('https:');
    if ((token === undefined || (ca === undefined && https)) && options.config !== undefined) {
      const admin = await readAdminConfig(options.config, env, token !== undefined);
      return { url, token: token ?? admin.token, ca: ca ?? (https ? await configCa(admin) : undefined) };
    }
    return { url, token, ca };
  }
  const admin = await readAdminConfig(options.config ?? DEFAULT_CONFIG, env, token !== undefined);
  const scheme = admin.tls === undefined ? 'http' : 'https';
  return { url: `${scheme}://${hostForUrl(admin.host)}:${admin.port}`, token: token ?? admin.token, ca: ca ?? (await configCa(admin)) };
}

/** readCa reads a --ca / SERVOY_LB_CA file; an unreadable one is a usage error (exit 1), never "trust anything". */
async function readCa(file: string, from: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new CliError(`${from}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 1);
  }
}

/** configCa is admin.tls.cert of the config file: the certificate the admin API presents (self-signed, or its chain). */
async function configCa(admin: AdminConfig): Promise<Buffer | undefined> {
  return admin.tls === undefined ? undefined : readCa(admin.tls.cert, 'admin.tls.cert of the config file (or name the certificate with --ca FILE)');
}

/** AdminApiError is an answer of the API that refused a call; commands may add hints by code. */
export class AdminApiError extends CliError {
  constructor(
    message: string,
    exitCode: 1 | 2,
    readonly code: string,
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message, exitCode);
    this.name = 'AdminApiError';
  }
}

const dispatcher = new Agent({ connect: { timeout: 5_000 } });
/** One connection pool per target with its own CAs (a target lives for one command). */
const caDispatchers = new WeakMap<AdminTarget, Agent>();

function dispatcherFor(target: AdminTarget): Agent {
  if (target.ca === undefined) return dispatcher;
  let agent = caDispatchers.get(target);
  if (agent === undefined) {
    agent = new Agent({ connect: { timeout: 5_000, ca: target.ca } });
    caDispatchers.set(target, agent);
  }
  return agent;
}

/**
 * adminRequest makes one call and returns the parsed JSON answer. A refusal becomes an
 * AdminApiError: exit 1 when our input was wrong (INVALID_BODY, INVALID_CONFIG), else 2.
 */
export async function adminRequest<T>(target: AdminTarget, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let status: number;
  let text: string;
  try {
    const res = await request(`${target.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: ADMIN_TIMEOUT_MS,
      bodyTimeout: ADMIN_TIMEOUT_MS,
      reset: true,
      dispatcher: dispatcherFor(target),
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw unreachable(target, err as NodeJS.ErrnoException);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (status >= 200 && status < 300 && data !== undefined) return data as T;
  if (status === 401) {
    const message = target.token === undefined
      ? "the balancer's admin API needs a token: pass --token TOKEN or set SERVOY_LB_TOKEN"
      : 'the balancer refused the token (check --token, SERVOY_LB_TOKEN or admin.token in the config file)';
    throw new AdminApiError(message, 2, 'UNAUTHORIZED', status);
  }
  const error = errorOf(data);
  if (error === undefined) throw new CliError(`unexpected answer from ${target.url} (HTTP ${status}); is that the servoy-lb admin API?`, 2);
  const extra = Array.isArray(error.details) ? error.details.filter((d): d is string => typeof d === 'string' && !error.message.includes(d)) : [];
  const exit = error.code === 'INVALID_BODY' || error.code === 'INVALID_CONFIG' ? 1 : 2;
  throw new AdminApiError([error.message, ...extra].join('\n'), exit, error.code, status, error.details);
}

function errorOf(data: unknown): { code: string; message: string; details?: unknown } | undefined {
  const error = (data as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (typeof error?.code !== 'string' || typeof error.message !== 'string') return undefined;
  return { code: error.code, message: error.message, details: error.details };
}

function unreachable(target: AdminTarget, err: NodeJS.ErrnoException): CliError {
  const code = err.code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new CliError(`the balancer's admin API at ${target.url} did not answer within ${ADMIN_TIMEOUT_MS / 1000} s`, 2);
  }
  if (TLS_TRUST_CODES.has(code)) {
    return new CliError(
      `the admin API at ${target.url} presented a certificate this command does not trust (${code}): name its CA or self-signed certificate with --ca FILE or SERVOY_LB_CA`,
      2,
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new CliError(`the admin API at ${target.url} presented a certificate that is not valid now (${code}): renew admin.tls.cert and restart the balancer`, 2);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new CliError(`the admin API's certificate does not name the host of ${target.url} (${code}): connect by a name or address its subjectAltName lists`, 2);
  }
  if (/SSL|TLS/.test(code) || code === 'EPROTO') {
    return new CliError(`cannot talk TLS with the admin API at ${target.url} (${code}): is it served over ${target.url.startsWith('https:') ? 'plain HTTP? use http://' : 'HTTPS? use https://'}`, 2);
  }
  if (code === 'UND_ERR_SOCKET' && target.url.startsWith('http:')) {
    return new CliError(`the admin API at ${target.url} closed the connection (is it served over HTTPS, admin.tls? use https://)`, 2);
  }
  const why = code === 'ECONNREFUSED' || code === '' ? '' : ` (${code})`;
  return new CliError(`cannot reach the balancer's admin API at ${target.url}${why} (is it running?)`, 2);
}

/** Certificate verification failures: the answer is --ca, never turning verification off. */
const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
]);

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function normalizeUrl(value: string, from: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError(`${from}: ${JSON.stringify(value)} is not a URL such as http://127.0.0.1:8081`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`${from}: expected an http: or https: URL, got ${JSON.stringify(value)}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** hostForUrl turns admin.host into something to connect to: a wildcard means this machine. */
function hostForUrl(host: string): string {
  const plain = host.replace(/^\[(.*)\]$/, '$1');
  if (plain === '0.0.0.0' || plain === '') return '127.0.0.1';
  if (plain === '::') return '[::1]';
  return isIP(plain) === 6 ? `[${plain}]` : plain;
}

type AdminConfig = { host: string; port: number; token?: string | undefined; tls?: { cert: string; key: string } | undefined };

/**
 * readAdminConfig reads admin.* of a config file with loadConfig. The operator's shell
 * often lacks variables only the service has (the cookie secret, say), which fails the
 * full load; then the admin section alone is read, since the running balancer already
 * validated the rest. With tokenKnown, an unset admin.token variable does not matter.
 */
async function readAdminConfig(file: string, env: NodeJS.ProcessEnv, tokenKnown: boolean): Promise<AdminConfig> {
  try {
    return (await loadConfig(file, env)).config.admin;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const admin = await readAdminSection(file, env, tokenKnown);
    if (admin !== undefined) return admin;
    const problems = err.problems.map((line) => `  ${line}`).join('\n');
    throw new CliError(`cannot find the admin API from the config file: ${err.message}\n${problems}\n(or name the API with --admin URL)`, 1);
  }
}

async function readAdminSection(file: string, env: NodeJS.ProcessEnv, tokenKnown: boolean): Promise<AdminConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const json = parseJsonText(text);
  if (!json.ok || typeof json.value !== 'object' || json.value === null) return undefined;
  const section = (json.value as { admin?: unknown }).admin ?? {};
  const substituted = substituteEnv(section, env);
  const failed = [...substituted.failedPaths];
  if (failed.some((path) => path !== 'token' || !tokenKnown)) return undefined;
  const value = substituted.value as Record<string, unknown>;
  if (failed.length > 0) delete value.token;
  const parsed = configSchema.shape.admin.safeParse(value);
  if (!parsed.success) return undefined;
  // As loadConfig does: the certificate file is relative to the config file.
  const tls = parsed.data.tls;
  const cert = tls === undefined || isAbsolute(tls.cert) ? tls?.cert : resolve(dirname(resolve(file)), tls.cert);
  return { ...parsed.data, tls: tls === undefined ? undefined : { ...tls, cert: cert! } };
}
