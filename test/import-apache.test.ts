import t from 'tap';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NoBalancerMemberError, SCHEMA_REF, formatWarning, importApache, placeholderEnv } from '../src/apache/convert.js';
import { parseApache } from '../src/apache/parse.js';
import { formatDuration, parseRouteCookie, parseStatus, parseTimeout, parseUrl } from '../src/apache/values.js';
import { parseConfigText } from '../src/config/load.js';

// `servoy-lb import-apache`: Apache mod_proxy_balancer config -> lb.config.json. Every case
// lists the config it must produce (a subset; `backends` exactly) and every warning it must
// print (each a part of one line, no more lines than listed), and every output must pass
// the real config loader.

const root = resolve(import.meta.dirname, '..');
const example = (name: string): string => readFileSync(join(root, 'examples', 'apache', name), 'utf8');


interface Case {
  desc: string;
  input: string;
  /** Subset of the config; `backends`, when given, must match exactly. */
  want: Record<string, unknown>;
  /** Each is a part of a warning line (formatted, e.g. "line 4: lbmethod"); every line must contain one. */
  warnings: string[];
  /** Keys that must not be in the output. */
  absent?: string[];
}

const http2 = `
<Proxy "balancer://servoy">
    BalancerMember "http://10.0.0.11:8080" route=servoy-a
    BalancerMember "http://10.0.0.12:8080" route=servoy-b
    ProxySet stickysession=JSESSIONID|jsessionid
</Proxy>
ProxyPass "/" "balancer://servoy/"
`;

const cases: Case[] = [
  {
    desc: 'example servoy.conf: TLS, redirect vhost, ws balancer merged, hot standby left out',
    input: example('servoy.conf'),
    want: {
      $schema: SCHEMA_REF,
      listen: { port: 443, tls: { cert: '/etc/pki/tls/certs/servoy.example.com.crt', key: '/etc/pki/tls/private/servoy.example.com.key', redirectPort: 80 } },
      backends: [
        { id: 'servoy-a', url: 'http://10.0.0.11:8080', weight: 2, route: 'servoy-a' },
        { id: 'servoy-b', url: 'http://10.0.0.12:8080', weight: 1, route: 'servoy-b' },
      ],
      affinity: { sessionCookie: 'JSESSIONID' },
      outlier: { ejectFor: '30s' },
      timeouts: { connect: '5s', response: '10m', websocketIdle: '1h' },
    },
    warnings: [
      'line 43: http://10.0.0.13:8080 is left out (status +H, hot standby): servoy-lb has no standby servers; when it should take sessions: servoy-lb backends add servoy-c http://10.0.0.13:8080 --weight 1',
      'line 46: ProxySet lbmethod=byrequests has no equivalent',
      'line 59: SetHandler balancer-manager: use servoy-lb\'s admin dashboard',
      'line 64: ProxyPass /balancer-manager ! keeps /balancer-manager away from the backends in Apache; servoy-lb has no exclusions',
    ],
    absent: ['admin', 'healthCheck'],
  },
  {
    desc: 'example servoy-routeid.conf: route cookie, Define, RewriteRule [P] to the ws balancer, +D imported and drained',
    input: example('servoy-routeid.conf'),
    want: {
      listen: { port: 8000 },
      backends: [
        { id: '1', url: 'http://servoy1.internal:8080', weight: 1 },
        { id: '2', url: 'http://servoy2.internal:8080', weight: 1 },
      ],
      affinity: { cookie: { name: 'ROUTEID', secure: true, sameSite: 'Lax' }, failoverDelay: '60s' },
      timeouts: { response: '5m' },
    },
    warnings: [
      "line 14: the route cookie ROUTEID=.%{BALANCER_WORKER_ROUTE}e becomes servoy-lb's own signed affinity cookie, also named ROUTEID (affinity.cookie.name)",
      'line 18: http://servoy2.internal:8080 has status +D, disabled: imported',
      'run `servoy-lb drain 2` right after start',
      'line 19: ProxySet lbmethod=bybusyness has no equivalent',
      'line 19: ProxySet nofailover=On: servoy-lb holds the sessions of a server that is down for affinity.failoverDelay (set to 60s',
    ],
  },
  {
    desc: 'two members, sticky on JSESSIONID, no listener: defaults kept',
    input: http2,
    want: {
      backends: [
        { id: 'servoy-a', url: 'http://10.0.0.11:8080', weight: 1, route: 'servoy-a' },
        { id: 'servoy-b', url: 'http://10.0.0.12:8080', weight: 1, route: 'servoy-b' },
      ],
      affinity: { sessionCookie: 'JSESSIONID' },
    },
    warnings: ['import-apache: no Listen or <VirtualHost> port found: servoy-lb listens on its default port, 8080'],
    absent: ['listen', 'timeouts', 'outlier'],
  },
  {
    desc: 'syntax: case-insensitive names, quotes, continuations, comments, <IfModule> read through',
    input: [
      '# a comment',
      '   # an indented comment',
      'listen 8080',
      '<IfModule mod_proxy_balancer.c>',
      "  <PROXY 'balancer://Servoy'>",
      '    balancermember \\',
      '        "http://Servoy-A.example.com:8080" \\',
      '        loadfactor=3',
      "    BALANCERMEMBER 'http://servoy-b.example.com:8080' loadfactor=\"1\"",
      '    proxyset STICKYSESSION=JSESSIONID',
      '  </proxy>',
      '  proxypass / balancer://servoy/ # trailing comment',
      '</IfModule>',
    ].join('\n'),
    want: {
      listen: { port: 8080 },
      backends: [
        { id: 'servoy-a', url: 'http://servoy-a.example.com:8080', weight: 3 },
        { id: 'servoy-b', url: 'http://servoy-b.example.com:8080', weight: 1 },
      ],
      affinity: { sessionCookie: 'JSESSIONID' },
    },
    warnings: ['line 12: "# trailing comment" read as a comment'],
  },
  {
    desc: 'BalancerMember and ProxySet outside <Proxy> name their balancer; ids from IP addresses',
    input: `
Listen 80
BalancerMember balancer://pool http://10.0.0.11:8080
BalancerMember balancer://pool http://10.0.0.12:8080 loadfactor=4
ProxySet balancer://pool stickysession=JSESSIONID lbmethod=bytraffic
ProxyPass / balancer://pool/
`,
    want: {
      listen: { port: 80 },
      backends: [
        { id: 'servoy-1', url: 'http://10.0.0.11:8080', weight: 1 },
        { id: 'servoy-2', url: 'http://10.0.0.12:8080', weight: 4 },
      ],
    },
    warnings: ['line 5: ProxySet lbmethod=bytraffic has no equivalent: servoy-lb places new sessions by weighted consistent hashing'],
  },
  {
    desc: '<Location /> ProxyPass with balancer parameters; ws balancer under /websocket with the same path',
    input: `
Listen 80
<Proxy balancer://http>
  BalancerMember http://s1.lan:8080 route=s1
  BalancerMember http://s2.lan:8080 route=s2
</Proxy>
<Proxy balancer://ws>
  BalancerMember ws://s1.lan:8080 route=s1
  BalancerMember ws://s2.lan:8080 route=s2
  BalancerMember ws://s3.lan:8080 route=s3
</Proxy>
<Location /websocket>
  ProxyPass balancer://ws/websocket stickysession=JSESSIONID
</Location>
<Location />
  ProxyPass balancer://http/ stickysession=JSESSIONID|jsessionid
  ProxyPassReverse balancer://http/
</Location>
`,
    want: {
      backends: [
        { id: 's1', url: 'http://s1.lan:8080', weight: 1, route: 's1' },
        { id: 's2', url: 'http://s2.lan:8080', weight: 1, route: 's2' },
      ],
      affinity: { sessionCookie: 'JSESSIONID' },
    },
    warnings: ['line 10: BalancerMember ws://s3.lan:8080 of balancer://ws has no member at the same host:port in balancer://http; left out'],
  },
  {
    desc: 'ProxyPass /websocket balancer://ws/ drops the /websocket prefix: warned',
    input: `${http2}
<Proxy balancer://ws>
  BalancerMember ws://10.0.0.11:8080
  BalancerMember ws://10.0.0.12:8080
</Proxy>
ProxyPass /websocket balancer://ws/
`,
    want: { backends: [{ id: 'servoy-a' }, { id: 'servoy-b' }] },
    warnings: [
      'line 13: ProxyPass /websocket balancer://ws/ maps /websocket to / on the backends; servoy-lb forwards request paths unchanged',
      'no Listen or <VirtualHost> port found',
    ],
  },
  {
    desc: 'RewriteRule [P] to one ws:// server and ProxyPass with a worker timeout',
    input: `${http2}
Listen 80
ProxyWebsocketIdleTimeout 900
RewriteEngine On
RewriteCond %{HTTP:Upgrade} =websocket [NC]
RewriteRule ^/websocket/(.*) ws://10.0.0.11:8080/websocket/$1 [P,L]
ProxyPass /ws2 ws://10.0.0.12:8080/ws2 timeout=60 connectiontimeout=3
`,
    want: { timeouts: { connect: '3s', websocketIdle: '15m' } },
    warnings: [
      'line 13: RewriteRule ^/websocket/(.*) ws://10.0.0.11:8080/websocket/$1 sends all these requests to one server; servoy-lb sends each to its session\'s server',
      'line 14: ProxyPass /ws2 ws://10.0.0.12:8080/ws2 sends all these requests to one server',
    ],
  },
  {
    desc: 'several balancers: ProxyPass "/" picks the pool, the others are warned about',
    input: `
Listen 80
<Proxy balancer://reports>
  BalancerMember http://rep1:8080
  BalancerMember http://rep2:8080
</Proxy>
<Proxy balancer://servoy>
  BalancerMember http://app1:8080
  BalancerMember http://app2:8080
  ProxySet stickysession=JSESSIONID
</Proxy>
<Proxy balancer://servoy-rest>
  BalancerMember http://app1:8080
  BalancerMember http://app2:8080
</Proxy>
<Proxy balancer://empty>
</Proxy>
ProxyPass /reports balancer://reports/reports
ProxyPass /servoy-service balancer://servoy-rest/servoy-service
ProxyPass / balancer://servoy/
`,
    want: {
      backends: [
        { id: 'app1', url: 'http://app1:8080', weight: 1 },
        { id: 'app2', url: 'http://app2:8080', weight: 1 },
      ],
      paths: [{ prefix: '/servoy-service/', affinity: 'none' }],
    },
    warnings: [
      'line 3: balancer://reports (2 members) is not converted: servoy-lb fronts one pool of servers, here balancer://servoy (ProxyPass / points to it)',
      'line 16: balancer://empty has no BalancerMember; ignored',
    ],
  },
  {
    desc: 'no ProxyPass "/": the first balancer with http members, and the proxied paths are named',
    input: `
Listen 80
<Proxy balancer://ws>
  BalancerMember ws://app1:8080
</Proxy>
<Proxy balancer://app>
  BalancerMember http://app1:8080
</Proxy>
ProxyPass /servoy-ngclient balancer://app/servoy-ngclient stickysession=JSESSIONID
ProxyPass /websocket balancer://ws/websocket
ProxyPass /missing balancer://nothing/
`,
    want: { backends: [{ id: 'app1', url: 'http://app1:8080', weight: 1 }], affinity: { sessionCookie: 'JSESSIONID' } },
    warnings: [
      'line 9: servoy-lb sends every request path to the backends; Apache proxied only /servoy-ngclient and /websocket',
      'line 11: ProxyPass /missing points to balancer://nothing, which has no BalancerMember; ignored',
    ],
  },
  {
    desc: 'no ProxyPass at all: said once',
    input: '<Proxy balancer://app>\nBalancerMember http://app1:8080\nProxySet stickysession=JSESSIONID\n</Proxy>\nListen 80\n',
    want: { backends: [{ id: 'app1', url: 'http://app1:8080', weight: 1 }] },
    warnings: ['line 1: no ProxyPass or RewriteRule [P] sends requests to balancer://app: servoy-lb sends every request to its backends'],
  },
  {
    desc: 'ProxyPassMatch and an unconditional RewriteRule [P] count as proxying everything',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://app1:8080
  BalancerMember http://app2:8080
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPassMatch ^/(.*)$ balancer://app/$1
RewriteRule ^/(.*)$ balancer://app/$1 [P]
`,
    want: { backends: [{ id: 'app1' }, { id: 'app2' }] },
    warnings: [],
  },
  {
    desc: 'status flags: +S left out, +D/+N imported with the drain command, +I and +E warned and kept, -D clears',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://10.0.0.1:8080 route=a status=+I
  BalancerMember http://10.0.0.2:8080 route=b status=+D
  BalancerMember http://10.0.0.3:8080 route=c status=S
  BalancerMember http://10.0.0.4:8080 route=d status=+N loadfactor=5
  BalancerMember http://10.0.0.5:8080 route=e status=+E
  BalancerMember http://10.0.0.6:8080 route=f status=+D-D
  BalancerMember http://10.0.0.7:8080 route=g status=+Z
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: {
      backends: [
        { id: 'a', url: 'http://10.0.0.1:8080', weight: 1, route: 'a' },
        { id: 'b', url: 'http://10.0.0.2:8080', weight: 1, route: 'b' },
        { id: 'd', url: 'http://10.0.0.4:8080', weight: 5, route: 'd' },
        { id: 'e', url: 'http://10.0.0.5:8080', weight: 1, route: 'e' },
        { id: 'f', url: 'http://10.0.0.6:8080', weight: 1, route: 'f' },
        { id: 'g', url: 'http://10.0.0.7:8080', weight: 1, route: 'g' },
      ],
    },
    warnings: [
      'line 4: status=+I (ignore errors) has no equivalent',
      "line 5: http://10.0.0.2:8080 has status +D, disabled: imported, as Apache still sends it its users' sticky sessions, but lb.config.json holds no drain state: run `servoy-lb drain b` right after start",
      'line 6: http://10.0.0.3:8080 is left out (status +S, stopped)',
      'line 7: http://10.0.0.4:8080 has status +N, draining: imported',
      'run `servoy-lb drain d` right after start',
      'line 8: status=+E (in error) is not carried over: servoy-lb starts every backend as up and lets its health checks decide',
      'line 10: status=+Z: unknown flag Z; ignored',
    ],
  },
  {
    desc: 'every member disabled or standby: all kept, each with the disable command',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://10.0.0.1:8080 route=a status=+H
  BalancerMember http://10.0.0.2:8080 route=b status=+D+H
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { backends: [{ id: 'a', url: 'http://10.0.0.1:8080', weight: 1, route: 'a' }, { id: 'b', url: 'http://10.0.0.2:8080', weight: 1, route: 'b' }] },
    warnings: [
      'line 4: http://10.0.0.1:8080 has status +H, hot standby, which lb.config.json cannot hold; as every member has such a status it is kept: run `servoy-lb disable a` right after start',
      'line 5: http://10.0.0.2:8080 has status +D+H, disabled and hot standby',
    ],
  },
  {
    desc: 'loadfactors: decimals scaled by 10, a bad one becomes 1',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://a.lan:8080 loadfactor=1.5
  BalancerMember http://b.lan:8080 loadfactor=3
  BalancerMember http://c.lan:8080 loadfactor=abc
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: {
      backends: [
        { id: 'a', url: 'http://a.lan:8080', weight: 15 },
        { id: 'b', url: 'http://b.lan:8080', weight: 30 },
        { id: 'c', url: 'http://c.lan:8080', weight: 10 },
      ],
    },
    warnings: ['line 4: decimal loadfactors: weights are loadfactor × 10', 'line 6: loadfactor=abc is not a positive number; weight 1'],
  },
  {
    desc: 'ids: invalid and duplicate routes, same host on two ports, default ports, ws-only pool',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember ws://app.lan:8080 route=node.1
  BalancerMember ws://app.lan:8081 route=dup
  BalancerMember wss://other.lan route=dup
  BalancerMember ws://10.9.9.9 route=servoy-4
  BalancerMember ws://10.9.9.9:80
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: {
      backends: [
        { id: 'app-8080', url: 'http://app.lan:8080', weight: 1 },
        { id: 'dup', url: 'http://app.lan:8081', weight: 1, route: 'dup' },
        { id: 'other', url: 'https://other.lan', weight: 1 },
        { id: 'servoy-4', url: 'http://10.9.9.9', weight: 1, route: 'servoy-4' },
      ],
    },
    warnings: [
      'line 4: route=node.1 cannot be a servoy-lb route (use 1-64 letters, digits, "_" or "-"); left out, so session ids ending in .node.1 are not recognised',
      'line 6: route=dup is also the route of line 5; routes must be unique, so this one is left out',
      'line 8: BalancerMember ws://10.9.9.9:80 is the same server as line 7; left out',
    ],
  },
  {
    desc: 'AJP members: HTTP port from the ws twin, else 8080',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember ajp://s1.lan:8009 route=s1
  BalancerMember ajp://s2.lan:8009 route=s2
  ProxySet stickysession=JSESSIONID
</Proxy>
<Proxy balancer://ws>
  BalancerMember ws://s1.lan:8181 route=s1
</Proxy>
ProxyPass /websocket balancer://ws/websocket
ProxyPass / balancer://app/
`,
    want: {
      backends: [
        { id: 's1', url: 'http://s1.lan:8181', weight: 1, route: 's1' },
        { id: 's2', url: 'http://s2.lan:8080', weight: 1, route: 's2' },
      ],
    },
    warnings: [
      'line 4: ajp://s1.lan:8009: servoy-lb speaks HTTP, not AJP, to the backends; using http://s1.lan:8181 (the port of ws://s1.lan:8181, line 9)',
      "line 5: ajp://s2.lan:8009: servoy-lb speaks HTTP, not AJP, to the backends; using http://s2.lan:8080 (Servoy's default HTTP port): check it",
    ],
  },
  {
    desc: 'worker parameters: timeouts (largest wins), retry, health checks, unsupported and unknown ones',
    input: `
Listen 80
Timeout 90
ProxyTimeout 120
KeepAliveTimeout 10
<Proxy balancer://app>
  BalancerMember http://a.lan:8080 timeout=300 connectiontimeout=250ms retry=10 hcmethod=GET hcuri=/servoy-service/ping hcinterval=10 hcpasses=3 hcfails=2 ping=1 ttl=60 max=50
  BalancerMember http://b.lan:8080 timeout=600 connectiontimeout=2 retry=60 hcuri=/other lbset=1 redirect=a bogus=1 flag
  ProxySet stickysession=JSESSIONID timeout=30 maxattempts=3 failonstatus=503 failontimeout=On growth=5 nonce=None stickysessionsep=: scolonpathdelim=On nofailover=Off
</Proxy>
<Proxy http://a.lan:8080>
  ProxySet keepalive=On
</Proxy>
<Proxy http://elsewhere:8080>
  ProxySet timeout=5
</Proxy>
ProxyPass / balancer://app/ connectiontimeout=5
`,
    want: {
      healthCheck: { path: '/servoy-service/ping', interval: '10s', rise: 3, fall: 2 },
      outlier: { ejectFor: '1m' },
      timeouts: { connect: '2s', response: '10m', clientIdle: '10s' },
    },
    warnings: [
      'line 7: BalancerMember ping=1, ttl=60 and max=50: no servoy-lb equivalent; ignored',
      'line 7: connectiontimeout= differs between servers; servoy-lb has one timeouts.connect for all: using the largest, 2s',
      'line 7: timeout= differs between servers; servoy-lb has one timeouts.response for all: using the largest, 10m',
      'line 7: retry= differs between servers; servoy-lb has one outlier.ejectFor for all: using the largest, 1m',
      'line 8: BalancerMember hcuri=/other differs from hcuri=/servoy-service/ping (line 7)',
      'line 8: BalancerMember lbset=1: servoy-lb has no lbsets',
      'line 8: BalancerMember redirect=a: servoy-lb has no redirect routes',
      'line 8: BalancerMember: unknown parameters bogus=1 and flag; ignored',
      'line 9: ProxySet timeout=30 on a balancer is how long Apache waits for a free worker',
      'line 9: ProxySet maxattempts=3: servoy-lb retries only a new session',
      'line 9: ProxySet failonstatus=503: no equivalent; servoy-lb takes a backend out after outlier.consecutiveFailures proxy errors, and treats a 503 to a new session as Servoy maintenance mode',
      'line 9: ProxySet failontimeout=On: no servoy-lb equivalent',
      'line 9: ProxySet growth=5: add backends at run time with `servoy-lb backends add`',
      "line 9: ProxySet nonce=None: the balancer-manager is replaced by servoy-lb's admin API",
      'line 9: ProxySet stickysessionsep=:: servoy-lb reads the route after the first "." of the session id',
      'line 12: ProxySet keepalive=On: no servoy-lb equivalent; ignored',
      'line 15: ProxySet for http://elsewhere:8080, which is not a server of balancer://app; ignored',
      'line 17: ProxyPass connectiontimeout=5 is not a balancer parameter servoy-lb knows; ignored',
    ],
  },
  {
    desc: 'Timeout and ProxyTimeout without member timeouts: the virtual host\'s own wins',
    input: `
Timeout 90
ProxyTimeout 45
<VirtualHost *:8080>
  ProxyTimeout 240
  ProxyPass / balancer://app/ stickysession=JSESSIONID
</VirtualHost>
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
</Proxy>
`,
    want: { listen: { port: 8080 }, timeouts: { response: '4m' } },
    warnings: [],
  },
  {
    desc: 'hcmethod other than GET, hcinterval with a unit, hcexpr',
    input: `
Listen 80
ProxyHCExpr ok234 {%{REQUEST_STATUS} =~ /^[234]/}
<Proxy balancer://app>
  BalancerMember http://a.lan:8080 hcmethod=OPTIONS hcinterval=500ms hcexpr=ok234 hcfails=0
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { healthCheck: { interval: '500ms' } },
    warnings: [
      'line 3: ProxyHCExpr is not supported by servoy-lb; ignored (health checks accept the statuses in healthCheck.expectStatus',
      'line 5: BalancerMember hcexpr=ok234: no servoy-lb equivalent; ignored',
      'line 5: hcmethod=OPTIONS: servoy-lb health checks are GET / requests',
      'line 5: hcfails=0: not a positive whole number; ignored',
    ],
  },
  {
    desc: 'proxy directives: Host not preserved, forward proxy, Via, error override, request headers, access control',
    input: `${http2}
Listen 80
ProxyPreserveHost Off
ProxyRequests On
ProxyVia On
ProxyErrorOverride On
ProxyAddHeaders Off
ProxyIOBufferSize 65536
ProxyWebsocketFallbackToProxyHttp Off
RequestHeader set X-Forwarded-Proto "https"
RequestHeader unset Authorization
ErrorDocument 503 /maintenance.html
ErrorDocument 500 /oops.html
<Proxy balancer://servoy>
  Require ip 192.168.0.0/16
  Require all granted
  Order allow,deny
  Allow from all
  DocumentRoot /var/www
</Proxy>
<Proxy *>
  Require all granted
</Proxy>
ServerName servoy.example.com
`,
    want: { backends: [{ id: 'servoy-a' }, { id: 'servoy-b' }] },
    warnings: [
      'line 10: ProxyPreserveHost Off: servoy-lb always preserves the Host header',
      'line 11: ProxyRequests On (forward proxy) is not supported',
      'line 12: ProxyVia is not supported by servoy-lb; ignored (servoy-lb sends X-Forwarded-For',
      "line 13: ProxyErrorOverride is not supported by servoy-lb; ignored (servoy-lb passes the backends' error responses through",
      'line 14: ProxyAddHeaders Off: servoy-lb always sets X-Forwarded-For, -Proto and -Host',
      'line 15: ProxyIOBufferSize is not supported by servoy-lb; ignored',
      'line 17: RequestHeader set X-Forwarded-Proto https: servoy-lb sets X-Forwarded-For, -Proto and -Host itself',
      'line 18: RequestHeader unset Authorization: servoy-lb does not change request headers',
      'line 19: ErrorDocument 503 /maintenance.html: servoy-lb shows HTML files for the errors it produces; set errorPages."503"',
      'line 22: Require ip 192.168.0.0/16 inside <Proxy "balancer://servoy">: servoy-lb has no access control for clients',
      'line 26: DocumentRoot inside <Proxy "balancer://servoy"> is not converted; ignored',
    ],
  },
  {
    desc: 'TLS: virtual host chosen over Listen, key in the cert file, relative paths, chain, tuning, client certs',
    input: `
Listen 80
Listen 443
Listen 10.0.0.5:9000
SSLProtocol all -SSLv3 -TLSv1
<VirtualHost *:443>
  SSLEngine on
  SSLCertificateFile conf/ssl/lb.pem
  SSLCertificateFile /etc/ssl/lb-ecdsa.pem
  SSLCertificateChainFile /etc/ssl/chain.pem
  SSLCipherSuite HIGH:!aNULL
  SSLVerifyClient require
  ProxyPass / balancer://app/ stickysession=JSESSIONID
</VirtualHost>
<VirtualHost *:80>
  ProxyPass / balancer://app/ stickysession=JSESSIONID
</VirtualHost>
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
</Proxy>
`,
    want: { listen: { port: 443, tls: { cert: 'conf/ssl/lb.pem', key: 'conf/ssl/lb.pem' } } },
    warnings: [
      'line 4: Listen 10.0.0.5:9000: servoy-lb listens on port 443 only; not converted',
      'line 8: no SSLCertificateKeyFile: listen.tls.key is the certificate file, which must then hold the private key too',
      "line 8: conf/ssl/lb.pem is relative to Apache's ServerRoot; servoy-lb reads it relative to the config file: make it absolute",
      'line 9: a second SSLCertificateFile',
      'line 10: SSLCertificateChainFile /etc/ssl/chain.pem: servoy-lb reads the chain from listen.tls.cert',
      'line 11: SSLCipherSuite and SSLProtocol: TLS settings are not configurable in servoy-lb',
      'line 12: SSLVerifyClient require: servoy-lb does not ask clients for certificates',
      'line 15: <VirtualHost *:80> also proxies to the pool: servoy-lb listens on one port (443); not converted',
    ],
    absent: ['timeouts'],
  },
  {
    desc: 'TLS from the main server with Listen ... https; SSLEngine on without a certificate elsewhere',
    input: `
Listen 80
Listen 0.0.0.0:8443 https
SSLEngine on
SSLCertificateFile /etc/ssl/lb.crt
SSLCertificateKeyFile /etc/ssl/lb.key
<Proxy balancer://app>
  BalancerMember https://a.lan:8443
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
SSLProxyEngine On
SSLProxyCheckPeerName off
`,
    want: {
      listen: { port: 8443, tls: { cert: '/etc/ssl/lb.crt', key: '/etc/ssl/lb.key' } },
      backends: [{ id: 'a', url: 'https://a.lan:8443', weight: 1 }],
    },
    warnings: [
      'line 2: Listen 80: servoy-lb listens on port 8443 only; not converted',
      "line 13: SSLProxyCheckPeerName off: servoy-lb verifies the https backends' certificates with Node.js's trusted CAs; add a private CA with the NODE_EXTRA_CA_CERTS",
    ],
    absent: ['listen.host'],
  },
  {
    desc: 'SSLEngine on without a certificate; listen host from the virtual host; port 8081 moves the admin port',
    input: `
<VirtualHost 192.168.1.10:8081>
  SSLEngine on
  ProxyPass / balancer://app/ stickysession=JSESSIONID
</VirtualHost>
<VirtualHost lb.example.com:8082>
  ProxyPass / balancer://app/
</VirtualHost>
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
</Proxy>
`,
    want: { listen: { host: '192.168.1.10', port: 8081 }, admin: { port: 8083 } },
    warnings: [
      'line 2: port 8081 is servoy-lb\'s default admin port: admin.port is set to 8083',
      'line 3: SSLEngine on without SSLCertificateFile: listen.tls left out',
      'line 6: <VirtualHost lb.example.com:8082> also proxies to the pool: servoy-lb listens on one port (8081); not converted',
    ],
  },
  {
    desc: 'listen on a host name: not carried over',
    input: `${http2}\nListen lb.example.com:8080\n`,
    want: { listen: { port: 8080 } },
    warnings: ['line 9: listen address lb.example.com is a host name; servoy-lb listens on all addresses'],
  },
  {
    desc: 'stickysession with another session cookie and path parameter',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
  ProxySet stickysession=SERVOYSESSION|sid
</Proxy>
<Proxy balancer://ws>
  BalancerMember ws://a.lan:8080
  ProxySet stickysession=OTHER
</Proxy>
ProxyPass /websocket balancer://ws/websocket
ProxyPass / balancer://app/ stickysession=JSESSIONID
`,
    want: { affinity: { sessionCookie: 'JSESSIONID' } },
    warnings: [
      'line 9: ProxySet stickysession=OTHER on balancer://ws differs from stickysession=JSESSIONID (line 12); using JSESSIONID',
      'line 12: ProxyPass stickysession=JSESSIONID replaces stickysession=SERVOYSESSION|sid (line 5)',
    ],
  },
  {
    desc: 'a session cookie path parameter of another name is warned about',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
  ProxySet stickysession=SERVOYSESSION|sid
</Proxy>
ProxyPass / balancer://app/
`,
    want: { affinity: { sessionCookie: 'SERVOYSESSION' } },
    warnings: ['line 5: stickysession=SERVOYSESSION|sid: servoy-lb reads the session id from the SERVOYSESSION cookie or a ;servoysession= path parameter, not ;sid='],
  },
  {
    desc: 'no stickysession and no route cookie: Apache was not sticky',
    input: '<Proxy balancer://app>\nBalancerMember http://a.lan:8080\n</Proxy>\nProxyPass / balancer://app/\nListen 80\n',
    want: { backends: [{ id: 'a', url: 'http://a.lan:8080', weight: 1 }] },
    warnings: ['line 1: balancer://app has no stickysession: Apache spread requests without affinity; servoy-lb pins every session to one server'],
    absent: ['affinity'],
  },
  {
    desc: 'route cookie: Max-Age -> ttl, Domain not supported, stickysession names it; routes are not jvmRoutes',
    input: `
Listen 80
Header add Set-Cookie "SRV=.%{BALANCER_WORKER_ROUTE}e; path=/; Max-Age=43200; Domain=.example.com; SameSite=Strict" env=BALANCER_ROUTE_CHANGED
Header set X-Route "%{BALANCER_WORKER_NAME}e"
<Proxy balancer://app>
  BalancerMember http://a.lan:8080 route=node1
  BalancerMember http://b.lan:8080 route=node2
  ProxySet stickysession=SRV
</Proxy>
ProxyPass / balancer://app/
`,
    want: {
      backends: [
        { id: 'node1', url: 'http://a.lan:8080', weight: 1 },
        { id: 'node2', url: 'http://b.lan:8080', weight: 1 },
      ],
      affinity: { cookie: { name: 'SRV', sameSite: 'Strict', ttl: '12h' } },
    },
    warnings: [
      "line 3: the route cookie SRV=.%{BALANCER_WORKER_ROUTE}e becomes servoy-lb's own signed affinity cookie, also named SRV (affinity.cookie.name); browsers' old SRV cookies are not honoured, and the members' route= values become backend ids only",
      'line 3: cookie attribute Domain=.example.com: no servoy-lb equivalent; ignored',
      'line 4: Header set X-Route %{BALANCER_WORKER_NAME}e uses balancer variables servoy-lb does not have; ignored',
    ],
    absent: ['affinity.sessionCookie'],
  },
  {
    desc: 'stickysession=ROUTEID without the Header directive: still the balancer cookie',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember http://a.lan:8080 route=a
  ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { backends: [{ id: 'a', url: 'http://a.lan:8080', weight: 1 }], affinity: { cookie: { name: 'ROUTEID' } } },
    warnings: ["line 5: stickysession=ROUTEID names a balancer route cookie (set by a Header directive elsewhere): it becomes servoy-lb's own signed affinity cookie, named ROUTEID"],
  },
  {
    desc: 'route cookie named like the session cookie, bad SameSite: default cookie name kept',
    input: `
Listen 80
Header add Set-Cookie "JSESSIONID=.%{BALANCER_WORKER_ROUTE}e; SameSite=Sometimes" env=BALANCER_ROUTE_CHANGED
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { backends: [{ id: 'a', url: 'http://a.lan:8080', weight: 1 }] },
    warnings: [
      "line 3: the route cookie JSESSIONID is replaced by servoy-lb's own signed affinity cookie (affinity.cookie.name, default SERVOYLB)",
      'line 3: SameSite=Sometimes is not Strict, Lax or None; ignored',
    ],
    absent: ['affinity'],
  },
  {
    desc: 'route cookie SameSite=None without Secure is refused',
    input: `
Listen 80
Header always add Set-Cookie "LB=.%{BALANCER_WORKER_ROUTE}e; SameSite=None" env=BALANCER_ROUTE_CHANGED
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
</Proxy>
ProxyPass / balancer://app/
`,
    want: { affinity: { cookie: { name: 'LB' } } },
    warnings: ["line 3: the route cookie LB=.%{BALANCER_WORKER_ROUTE}e becomes servoy-lb's own signed affinity cookie", 'line 3: SameSite=None without Secure: browsers drop such a cookie; ignored'],
    absent: ['affinity.cookie.sameSite'],
  },
  {
    desc: 'exclusions, flags, direct proxies outside the pool, ProxyPassReverse and cookie rewriting',
    input: `${http2}
Listen 80
ProxyPass /static !
ProxyPass /app balancer://servoy/app nocanon noquery
ProxyPass /reports http://reports.lan:8080/reports
ProxyPass /direct http://10.0.0.11:8080/other
ProxyPassReverse /app http://10.0.0.11:8080/elsewhere
ProxyPassReverseCookiePath /servoy /
ProxyPassReverseCookieDomain internal.lan internal.lan
ProxyPassMatch "^/(bad" balancer://servoy/
`,
    want: { backends: [{ id: 'servoy-a' }, { id: 'servoy-b' }] },
    warnings: [
      'line 10: ProxyPass /static ! keeps /static away from the backends in Apache; servoy-lb has no exclusions, so /static is proxied too',
      'line 11: ProxyPass flag noquery is not supported; ignored',
      'line 12: ProxyPass /reports http://reports.lan:8080/reports proxies to a server outside balancer://servoy; not converted',
      'line 13: ProxyPass /direct http://10.0.0.11:8080/other sends all these requests to one server',
      'line 13: ProxyPass /direct http://10.0.0.11:8080/other maps /direct to /other on the backend; servoy-lb forwards request paths unchanged',
      'line 14: ProxyPassReverse /app http://10.0.0.11:8080/elsewhere rewrites redirect paths',
      'line 15: ProxyPassReverseCookiePath /servoy / is not supported (servoy-lb does not rewrite cookies); ignored',
    ],
  },
  {
    desc: 'section problems: unclosed, stray and mismatched closings, <ProxyMatch>, Include',
    input: `
Listen 80
Include conf.d/*.conf
<ProxyMatch "^http://a">
  ProxySet timeout=5
</ProxyMatch>
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
  ProxySet stickysession=JSESSIONID
  <IfModule x>
</Proxy>
</Location>
ProxyPass / balancer://app/
<VirtualHost *:8080
  BalancerMember http://nowhere:8080
  ProxySet lbmethod=byrequests
  ProxyPass /x
  ProxyPass /y "not a url"
  RewriteRule ^/z "relative" [P]
  Listen nothing
  ProxyTimeout soon
  BalancerMember balancer://app "not a url"
`,
    want: { backends: [{ id: 'a', url: 'http://a.lan:8080', weight: 1 }] },
    warnings: [
      'line 3: Include conf.d/*.conf is not followed',
      'line 4: <ProxyMatch ^http://a> (a regular-expression <Proxy>) is not converted',
      'line 2: Listen 80: servoy-lb listens on port 8080 only; not converted',
      'line 5: ProxySet inside <ProxyMatch ^http://a> is not converted; ignored',
      'line 10: <IfModule> is not closed before </Proxy> on line 11',
      'line 12: </Location> closes no open <Location> section; ignored',
      'line 14: section line does not end with ">"',
      'line 14: <VirtualHost> is never closed',
      'line 15: BalancerMember outside <Proxy "balancer://..."> and without a balancer:// URL belongs to no balancer; ignored',
      'line 16: ProxySet outside <Proxy> and without a URL applies to nothing; ignored',
      'line 17: ProxyPass without a target URL; ignored',
      'line 18: ProxyPass target "not a url" is not a URL; ignored',
      'line 19: RewriteRule [P] to "relative" is not converted (no absolute URL)',
      'line 20: Listen nothing: no port; ignored',
      'line 21: ProxyTimeout soon: not a timeout; ignored',
      'line 22: BalancerMember "not a url" is not a worker URL',
    ],
  },
  {
    desc: 'unclosed quote, Define/UnDefine, ${VAR} left for the environment, userinfo and paths in member URLs',
    input: `
Define PORT 8080
Listen \${PORT}
UnDefine PORT
<Proxy balancer://app>
  BalancerMember http://\${APP_HOST}:9090 route=a
  BalancerMember "http://b.lan:8080/servoy
  BalancerMember http://c.lan:\${PORT}
  BalancerMember http://admin:secret@d.lan:8080
  BalancerMember http://e.lan:8080:bad
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: {
      listen: { port: 8080 },
      backends: [
        { id: 'a', url: 'http://${APP_HOST}:9090', weight: 1, route: 'a' },
        { id: 'b', url: 'http://b.lan:8080', weight: 1 },
        { id: 'c', url: 'http://c.lan:${PORT}', weight: 1 },
        { id: 'd', url: 'http://d.lan:8080', weight: 1 },
      ],
    },
    warnings: [
      'line 6: backend URL http://${APP_HOST}:9090: ${APP_HOST} is not defined in this file; servoy-lb reads it from the environment when it loads the config, as Apache did',
      'line 7: unclosed " quote; read to the end of the line',
      'line 7: BalancerMember http://b.lan:8080/servoy has the path /servoy; servoy-lb forwards request paths unchanged: it is dropped',
      'line 8: backend URL http://c.lan:${PORT}: ${PORT} is not defined in this file',
      'line 9: BalancerMember http://d.lan:8080 has user information (user@); servoy-lb does not send it: dropped',
      'line 10: BalancerMember "http://e.lan:8080:bad" is not a worker URL',
    ],
  },
  {
    desc: 'fcgi and h2c members are left out; others kept',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember fcgi://10.0.0.1:9000
  BalancerMember http://10.0.0.2:8080
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { backends: [{ id: 'servoy-1', url: 'http://10.0.0.2:8080', weight: 1 }] },
    warnings: ['line 4: BalancerMember fcgi://10.0.0.1:9000: servoy-lb proxies to http://, https://, ws:// and wss:// servers only; left out'],
  },
  {
    desc: 'ws twins: differing route, loadfactor and status are warned; ws member first in a mixed balancer',
    input: `
Listen 80
<Proxy balancer://app>
  BalancerMember ws://a.lan:8080 route=other loadfactor=3 status=+D
  BalancerMember http://a.lan:8080 route=a loadfactor=2
  ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass / balancer://app/
`,
    want: { backends: [{ id: 'a', url: 'http://a.lan:8080', weight: 2, route: 'a' }] },
    warnings: [
      'line 4: route=other differs from route=a of the same server (line 5); servoy-lb uses a',
      'line 4: status=+D differs from the http member (line 5): servoy-lb has one state per server and follows the http member',
      'line 4: loadfactor=3 differs from the http member (line 5): servoy-lb has one weight per server; using 2',
    ],
  },
  {
    desc: 'balancer-manager and https redirect by RewriteRule; ProxyPassReverse in <Location>',
    input: `
Listen 80
Listen 443
<VirtualHost *:80>
  RewriteEngine On
  RewriteCond %{HTTPS} off
  RewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [R=301,L]
</VirtualHost>
<VirtualHost *:443>
  SSLCertificateFile /etc/ssl/a.pem
  SSLCertificateKeyFile /etc/ssl/a.key
  <Location />
    ProxyPass balancer://app/ stickysession=JSESSIONID
    ProxyPassReverse balancer://app/
  </Location>
</VirtualHost>
<Proxy balancer://app>
  BalancerMember http://a.lan:8080
</Proxy>
`,
    want: { listen: { port: 443, tls: { cert: '/etc/ssl/a.pem', key: '/etc/ssl/a.key', redirectPort: 80 } } },
    warnings: [],
  },
];

/** validate runs the output through the real config loader, as `servoy-lb validate` would. */
function validate(config: Record<string, unknown>): void {
  // Any ${NAME} left in the output stands for a value, as `servoy-lb validate` would read it with NAME set.
  parseConfigText(JSON.stringify(config, null, 2), { baseDir: '/srv/servoy-lb', env: placeholderEnv() });
}

function get(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

t.test('import-apache conversions', async (t) => {
  for (const c of cases) {
    t.test(c.desc, async (t) => {
      const { config, warnings } = importApache(c.input);
      const lines = warnings.map(formatWarning);
      t.doesNotThrow(() => validate(config), 'the output passes the config loader');
      t.equal(Object.keys(config)[0], '$schema', '"$schema" comes first');
      t.match(config, c.want);
      if (c.want.backends !== undefined) {
        t.equal((config.backends as unknown[]).length, (c.want.backends as unknown[]).length, 'backend count');
        (c.want.backends as Record<string, unknown>[]).forEach((want, i) => {
          if (Object.keys(want).length > 1) t.same((config.backends as unknown[])[i], want, `backends[${i}] exactly`);
        });
      }
      for (const key of c.absent ?? []) t.equal(get(config, key), undefined, `no ${key}`);
      for (const part of c.warnings) t.ok(lines.some((line) => line.includes(part)), `warning: ${part}`, { found: lines });
      t.same(
        lines.filter((line) => !c.warnings.some((part) => line.includes(part))),
        [],
        'no other warnings',
      );
      for (const line of lines) t.match(line, /^import-apache: (line \d+: )?\S/, 'warning format');
    });
  }
});

t.test('warnings are sorted by line, file-wide ones first', async (t) => {
  const { warnings } = importApache(`${http2}\nProxyVia On\nProxySet balancer://servoy lbmethod=bytraffic\n`);
  const lines = warnings.map((w) => w.line ?? 0);
  t.same(lines, [...lines].sort((a, b) => a - b));
  t.equal(warnings[0]!.line, undefined);
});

t.test('a file without BalancerMember is refused', async (t) => {
  const cases: { desc: string; input: string; includes: string[] }[] = [
    { desc: 'empty', input: '', includes: [] },
    { desc: 'plain ProxyPass only', input: 'ProxyPass / http://10.0.0.11:8080/\n', includes: [] },
    { desc: 'an empty balancer', input: '<Proxy balancer://x>\n</Proxy>\nProxyPass / balancer://x/\n', includes: [] },
    { desc: 'the pool is in an included file', input: 'Listen 80\nInclude conf.d/servoy.conf\nIncludeOptional sites/*.conf\n', includes: ['conf.d/servoy.conf', 'sites/*.conf'] },
    { desc: 'only unusable members', input: '<Proxy balancer://x>\nBalancerMember fcgi://10.0.0.1:9000\n</Proxy>\n', includes: [] },
  ];
  for (const c of cases) {
    t.test(c.desc, async (t) => {
      const err = t.throws(() => importApache(c.input)) as unknown;
      t.type(err, NoBalancerMemberError);
      t.same((err as NoBalancerMemberError).includes, c.includes);
    });
  }
});

t.test('parseApache', async (t) => {
  const cases: { desc: string; input: string; want: unknown; warnings?: number }[] = [
    {
      desc: 'quotes with escaped quotes, single quotes, empty args',
      input: `Header set X "a \\"b\\" c" 'd e' ""`,
      want: [{ kind: 'directive', name: 'Header', key: 'header', args: ['set', 'X', 'a "b" c', 'd e', ''], line: 1 }],
    },
    {
      desc: 'continuation keeps the first line number; CRLF; BOM',
      input: '\uFEFF# c\r\nProxyPass / \\\r\n   balancer://x/ \\\r\n  stickysession=JSESSIONID\r\nListen 80',
      want: [
        { key: 'proxypass', args: ['/', 'balancer://x/', 'stickysession=JSESSIONID'], line: 2 },
        { key: 'listen', args: ['80'], line: 5 },
      ],
    },
    {
      desc: 'nested sections',
      input: '<VirtualHost *:443>\n  <Proxy "balancer://a">\n    BalancerMember http://x\n  </Proxy>\n</VirtualHost>\n',
      want: [{ kind: 'section', key: 'virtualhost', args: ['*:443'], line: 1, children: [{ kind: 'section', key: 'proxy', args: ['balancer://a'], children: [{ key: 'balancermember', line: 3 }] }] }],
    },
    {
      desc: 'a continued comment stays a comment; a file ending in a backslash',
      input: '# comment \\\nstill comment\nListen 80 \\',
      want: [{ key: 'listen', args: ['80'], line: 3 }],
    },
    {
      desc: 'Define substitutes later lines only',
      input: 'Listen ${P}\nDefine P 81\nListen ${P}\n',
      want: [{ args: ['${P}'] }, { key: 'define' }, { args: ['81'] }],
    },
  ];
  for (const c of cases) {
    t.test(c.desc, async (t) => {
      const parsed = parseApache(c.input);
      t.match(parsed.nodes, c.want);
      t.equal(parsed.nodes.length, (c.want as unknown[]).length);
      t.equal(parsed.warnings.length, c.warnings ?? 0);
    });
  }
});

t.test('value readers', async (t) => {
  t.match(parseUrl('http://10.0.0.11:8080/servoy'), { scheme: 'http', host: '10.0.0.11', port: 8080, path: '/servoy', userinfo: false });
  t.match(parseUrl('WS://User:pw@Host.lan'), { scheme: 'ws', host: 'Host.lan', path: '', userinfo: true });
  t.match(parseUrl('http://[::1]:8080/'), { host: '[::1]', port: 8080, path: '/' });
  t.match(parseUrl('http://[::1]'), { host: '[::1]' });
  t.match(parseUrl('balancer://Servoy-WS/websocket'), { scheme: 'balancer', host: 'Servoy-WS', path: '/websocket' });
  t.match(parseUrl('http://${HOST}:8080'), { host: '${HOST}', port: 8080 });
  for (const bad of ['/relative', 'http://', 'http://host:99999', 'http://[::1', 'http://[::1]x', 'http://host:abc']) t.equal(parseUrl(bad), undefined, bad);

  t.same([...parseStatus('+H').flags], ['H']);
  t.same([...parseStatus('+D+H-D').flags], ['H']);
  t.same([...parseStatus('d').flags], ['D']);
  t.same(parseStatus('+X').unknown, ['X']);

  t.equal(parseTimeout('30'), 30_000);
  t.equal(parseTimeout('250ms'), 250);
  t.equal(parseTimeout('2mi'), 120_000);
  t.equal(parseTimeout('1h'), 3_600_000);
  t.equal(parseTimeout('1.5'), 1500);
  t.equal(parseTimeout('soon'), undefined);

  t.equal(formatDuration(0), '0s');
  t.equal(formatDuration(1500), '1500ms');
  t.equal(formatDuration(90_000), '90s');
  t.equal(formatDuration(600_000), '10m');
  t.equal(formatDuration(7_200_000), '2h');

  t.match(parseRouteCookie('ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/; HttpOnly; Secure'), { name: 'ROUTEID', secure: true, httpOnly: true, unsupported: [] });
  t.match(parseRouteCookie('R=x; Max-Age=60; Expires=Wed'), { maxAgeMs: 60_000, unsupported: ['Expires=Wed'] });
  t.equal(parseRouteCookie('no-equals-sign'), undefined);
});
