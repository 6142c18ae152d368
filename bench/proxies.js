// The proxies the benchmarks compare, each started pinned to CPU 0 in front of one
// backend: servoy-lb (sticky cookie, access log and metrics on, as in production), a naive
// Node proxy on undici (the calibration peer), HAProxy with cookie insert and nginx
// (when installed: apt-get install haproxy nginx-light; skipped with a note otherwise).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort, servoyLbArgs, start, waitForPort } from './lib.js';

export const which = (cmd) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));


/**
 * startProxies starts every available proxy in front of backendPort; each entry is
 * { name, key, url, pid, child }. `dir` holds their config files. `lbArgs` are extra
 * node flags (or NAME=value environment variables, or @DIR: the servoy-lb built in DIR)
 * for servoy-lb; each of `lbVariants` ("label=ARGS") starts one more servoy-lb with those.
 */
export async function startProxies({ backendPort, dir, lbArgs = [], lbVariants = [], say = console.log }) {
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const proxies = [];
  const startLb = async (label, args) => {
    const flags = args.filter((a) => !a.startsWith('@') && !/^[A-Z_][A-Z0-9_]*=/.test(a));
    const root = args.find((a) => a.startsWith('@'))?.slice(1) ?? ROOT;
    const env = Object.fromEntries(args.filter((a) => /^[A-Z_][A-Z0-9_]*=/.test(a)).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
    const port = await freePort();
    const config = join(dir, `lb-${port}.config.json`);
    writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port },
        admin: { port: await freePort() },
        backends: [{ id: 'fast', url: backendUrl }],
        state: { file: join(dir, `state-${port}.json`) },
        log: { level: 'info', access: true },
        metrics: { enabled: true },
      }),
    );
    const child = await start(process.execPath, servoyLbArgs(['start', '-c', config], { root, extraFlags: flags }), { cpu: 0, ready: /servoy-lb listening/, env });
    const name = label === undefined ? 'servoy-lb (sticky cookie, access log, metrics)' : `servoy-lb ${label} (${args.join(' ')})`;
    proxies.push({ name, key: label === undefined ? 'servoy-lb' : `servoy-lb ${label}`, url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  };
  await startLb(undefined, lbArgs);
  for (const v of lbVariants) {
    const eq = v.indexOf('=');
    await startLb(v.slice(0, eq), v.slice(eq + 1).split(' ').filter(Boolean));
  }
  {
    const port = await freePort();
    const child = await start(process.execPath, [join(ROOT, 'bench/naive-proxy.js'), String(port), backendUrl], { cpu: 0, ready: /listening/ });
    proxies.push({ name: 'naive Node proxy on undici', key: 'naive', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  }
  const HAPROXY = which('haproxy');
  if (HAPROXY) {
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      `global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\nfrontend fe\n  bind 127.0.0.1:${port}\n  default_backend be\nbackend be\n  cookie SERVOYLB insert indirect nocache\n  http-reuse always\n  server fast 127.0.0.1:${backendPort} cookie fast\n`,
    );
    const child = await start(HAPROXY, ['-db', '-f', cfg], { cpu: 0 });
    await waitForPort(port);
    proxies.push({ name: 'HAProxy (cookie insert)', key: 'haproxy', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  } else say('HAProxy not installed (apt-get install haproxy): skipped');
  const NGINX = which('nginx');
  if (NGINX) {
    const port = await freePort();
    const cfg = join(dir, 'nginx.conf');
    writeFileSync(
      cfg,
      `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log /dev/null;\nevents { worker_connections 10000; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }\n  keepalive_requests 1000000;\n  server {\n    listen 127.0.0.1:${port};\n    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }\n  }\n}\n`,
    );
    const child = await start(NGINX, ['-c', cfg, '-p', dir], { cpu: 0 });
    await waitForPort(port);
    proxies.push({ name: 'nginx', key: 'nginx', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  } else say('nginx not installed (apt-get install nginx-light): skipped');
  return proxies;
}

/** sessionCookies gets each proxy's session cookie (servoy-lb and HAProxy insert theirs on the first answer). */
export async function sessionCookies(proxies) {
  for (const p of proxies) {
    const res = await fetch(p.url);
    await res.text();
    p.cookie = [...res.headers.getSetCookie().map((c) => c.split(';')[0]), 'JSESSIONID=0123456789abcdef.fast'].join('; ');
  }
}
