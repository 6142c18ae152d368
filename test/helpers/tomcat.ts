/**
 * Real Tomcat 10 instances for integration tests (Debian's tomcat10 + tomcat10-examples):
 * each with its own CATALINA_BASE in a temp dir, an Engine jvmRoute, one HTTP connector on
 * loopback, no shutdown port, a ROOT whose `/` opens a session (as Servoy's start page
 * does), the installed examples webapp at /examples, and an unbuffered access log the test
 * reads to see what reached Tomcat. Never the system service.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { closedPort } from './lb.js';
import type { TestLike } from './processes.js';

export const CATALINA_HOME = '/usr/share/tomcat10';
const CATALINA_SH = join(CATALINA_HOME, 'bin', 'catalina.sh');
/** Debian keeps the stock conf files here (and a live copy in /etc/tomcat10). */
const STOCK_CONF = join(CATALINA_HOME, 'etc');
export const EXAMPLES_DIR = '/usr/share/tomcat10-examples/examples';

/** Why real-Tomcat tests cannot run on this machine, or undefined when they can. */
export function tomcatMissing(): string | undefined {
  for (const path of [CATALINA_SH, join(STOCK_CONF, 'web.xml'), join(EXAMPLES_DIR, 'WEB-INF', 'web.xml')]) {
    if (!existsSync(path)) return `Tomcat 10 not installed (no ${path}): apt-get install tomcat10 tomcat10-examples`;
  }
  return undefined;
}

/** One running Tomcat. */
export interface Tomcat {
  /** The jvmRoute, also used as the balancer's backend id. */
  route: string;
  url: string;
  port: number;
  base: string;
  proc: ChildProcess;
  /** Whether the JVM is still running. */
  running(): boolean;
  /** Console output so far (catalina.sh run logs to stdout). */
  output(): string;
  /** Parsed lines of the access log so far. */
  access(): Promise<AccessLine[]>;
  /** SIGTERM (what `systemctl stop` sends), SIGKILL after graceMs; resolves when the JVM has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** One access log line: what Tomcat received and answered. '-' fields are undefined. */
export interface AccessLine {
  requestLine: string;
  status: number;
  userAgent: string | undefined;
  /** The JSESSIONID cookie the request sent. */
  sessionCookie: string | undefined;
  /** The first Set-Cookie header of the answer. */
  setCookie: string | undefined;
}

// The access log pattern, fields separated by a tab (%r never holds one: Tomcat escapes it).
const PATTERN = '%r&#9;%s&#9;%{User-Agent}i&#9;%{JSESSIONID}c&#9;%{Set-Cookie}o';
const dash = (v: string | undefined): string | undefined => (v === undefined || v === '-' ? undefined : v);

function serverXml(port: number, route: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector address="127.0.0.1" port="${port}" protocol="HTTP/1.1" connectionTimeout="20000" />
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="${route}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs" prefix="access" suffix=".log"
               rotatable="false" buffered="false" pattern="${PATTERN}" />
      </Host>
    </Engine>
  </Service>
</Server>
`;
}

/** Writes a CATALINA_BASE for `route` listening on `port`. */
async function makeBase(route: string, port: number): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), `servoy-lb-${route}-`));
  for (const dir of ['conf/Catalina/localhost', 'logs', 'temp', 'work', 'webapps/ROOT']) await mkdir(join(base, dir), { recursive: true });
  for (const file of ['web.xml', 'catalina.properties', 'logging.properties', 'context.xml']) await copyFile(join(STOCK_CONF, file), join(base, 'conf', file));
  await writeFile(join(base, 'conf', 'server.xml'), serverXml(port, route));
  // Servoy's start page opens an HTTP session; so does this `/` (the health checks' path).
  await writeFile(join(base, 'webapps', 'ROOT', 'index.jsp'), '<% session.getId(); %>ok\n');
  // The installed examples webapp, as Debian deploys it (its JSTL jars are symlinks).
  await writeFile(join(base, 'conf', 'Catalina', 'localhost', 'examples.xml'), `<Context docBase="${EXAMPLES_DIR}"><Resources allowLinking="true"/></Context>\n`);
  return base;
}

/**
 * Starts a Tomcat with jvmRoute `route` and resolves once `/` and `/examples/` answer 200
 * (polling, bounded by timeoutMs); rejects with its console output if it exits or does not
 * come up. A teardown stops it and removes its CATALINA_BASE.
 */
export async function startTomcat(t: TestLike, route: string, timeoutMs = 90_000): Promise<Tomcat> {
  // Below the ephemeral range: no parallel test's listen(0) takes it before Tomcat binds it.
  const port = await closedPort();
  const base = await makeBase(route, port);
  const proc = spawn(CATALINA_SH, ['run'], {
    cwd: base,
    env: {
      ...process.env,
      CATALINA_HOME,
      CATALINA_BASE: base,
      CATALINA_TMPDIR: join(base, 'temp'),
      JAVA_OPTS: '-Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.security.egd=file:/dev/./urandom',
      CATALINA_OPTS: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  let alive = true;
  void exited.then(() => { alive = false; });

  const stop = async (graceMs = 20_000): Promise<void> => {
    if (alive) proc.kill('SIGTERM');
    const kill = setTimeout(() => { if (alive) proc.kill('SIGKILL'); }, graceMs);
    await exited;
    clearTimeout(kill);
  };
  t.teardown(async () => {
    await stop(5000);
    await rm(base, { recursive: true, force: true });
  });

  const url = `http://127.0.0.1:${port}`;
  const answers = async (path: string): Promise<boolean> => {
    try {
      const res = await request(url + path, { headersTimeout: 5000, bodyTimeout: 5000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive) throw new Error(`Tomcat ${route} exited before answering:\n${out}`);
    if (/BindException|Address already in use/.test(out)) throw new Error(`Tomcat ${route} could not bind 127.0.0.1:${port}:\n${out}`);
    if ((await answers('/')) && (await answers('/examples/'))) break;
    if (Date.now() > deadline) throw new Error(`Tomcat ${route} did not answer on ${url} within ${timeoutMs} ms:\n${out}`);
    await new Promise((r) => setTimeout(r, 200)); // poll interval of a condition wait (Tomcat takes seconds to start)
  }

  const access = async (): Promise<AccessLine[]> => {
    const text = await readFile(join(base, 'logs', 'access.log'), 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l !== '').map((line) => {
      const [requestLine = '', status = '0', userAgent, sessionCookie, setCookie] = line.split('\t');
      return { requestLine, status: Number(status), userAgent: dash(userAgent), sessionCookie: dash(sessionCookie), setCookie: dash(setCookie) };
    });
  };
  return { route, url, port, base, proc, running: () => alive, output: () => out, access, stop };
}
