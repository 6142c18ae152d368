/**
 * Reading the facts out of a parsed Apache config: the balancers and their members, the
 * settings given to them (ProxySet, ProxyPass parameters), what is proxied where
 * (ProxyPass, <Location> ProxyPass, RewriteRule [P]), the listeners (Listen, <VirtualHost>,
 * SSL*), timeouts and the route-cookie recipe. Directives that matter to a balancer but
 * have no servoy-lb equivalent get their warning here, one each; directives that have
 * nothing to do with proxying are ignored. What the facts become is decided in convert.ts.
 */
import type { ApacheDirective, ApacheNode, ApacheSection, ImportWarning } from './parse.js';
import { type ApacheUrl, type Param, type RouteCookie, isOn, normalizePath, parseParams, parseRouteCookie, parseTimeout, parseUrl } from './values.js';

/** MemberFact is one BalancerMember. */
export interface MemberFact {
  line: number;
  /** Balancer key: the name in lower case. */
  balancer: string;
  url: ApacheUrl;
  params: Param[];
}

/** SettingFact is one balancer parameter, from ProxySet or from a ProxyPass to the balancer. */
export interface SettingFact {
  line: number;
  directive: string;
  param: Param;
}

export interface BalancerFact {
  /** balancer://NAME as written. */
  name: string;
  key: string;
  line: number;
  members: MemberFact[];
  settings: SettingFact[];
}

/** RouteFact says that requests matching path go to target (ProxyPass, ProxyPassMatch, RewriteRule [P]). */
export interface RouteFact {
  line: number;
  directive: string;
  /** Local path or, when regex, the pattern. */
  path: string;
  regex: boolean;
  /** `!` (exclusion), a balancer (key and remote path), or a worker URL. */
  target: { kind: 'exclude' } | { kind: 'balancer'; key: string; name: string; path: string } | { kind: 'url'; url: ApacheUrl };
  params: Param[];
  /** RewriteRule only: RewriteCond lines apply to it (e.g. only WebSocket upgrades). */
  conditional?: boolean;
  vhost?: VhostFact;
}

export interface Located<T> {
  value: T;
  line: number;
}

/** SslFact gathers the SSL* directives of a virtual host (or of the main server). */
export interface SslFact {
  engine?: Located<boolean>;
  cert?: Located<string>;
  extraCerts: number[];
  key?: Located<string>;
  chain?: Located<string>;
  /** Protocol / cipher tuning and client-certificate directives, by name. */
  tuning: Located<string>[];
  verifyClient?: Located<string>;
  /** SSLProxyVerify none, SSLProxyCheckPeer* off, SSLProxyCACertificate*: backend certificate trust. */
  proxyTrust: Located<string>[];
}

export interface VhostFact {
  line: number;
  /** `*:443` -> { port: 443 }; `10.0.0.5:80` -> { host, port }; `*` -> {}. */
  addresses: { host?: string; port?: number; raw: string }[];
  ssl: SslFact;
  /** Line of a `Redirect / https://...` or `RewriteRule ... https://... [R]`. */
  redirectsToHttps?: number;
}

export interface ListenFact {
  line: number;
  host?: string;
  port: number;
  protocol?: string;
}

export interface ApacheSetup {
  /** In order of first mention. */
  balancers: Map<string, BalancerFact>;
  /** ProxySet inside <Proxy http://host:port>: parameters of that one worker. */
  workerSettings: { line: number; url: ApacheUrl; params: Param[] }[];
  routes: RouteFact[];
  vhosts: VhostFact[];
  serverSsl: SslFact;
  listens: ListenFact[];
  routeCookie?: Located<RouteCookie>;
  /** Timeout, ProxyTimeout, KeepAliveTimeout, ProxyWebsocketIdleTimeout, by lower-case name; per vhost or main server. */
  timeouts: { key: string; ms: number; line: number; vhost?: VhostFact }[];
  /** Include / IncludeOptional targets: not followed. */
  includes: string[];
  memberCount: number;
  warnings: ImportWarning[];
}

interface Context {
  vhost?: VhostFact;
  /** Inside <Proxy balancer://x>: its key. */
  balancer?: string;
  /** Inside <Proxy http://...> (a single worker). */
  worker?: ApacheUrl;
  /** Inside some other <Proxy> / <ProxyMatch> (e.g. <Proxy *>): how it was written. */
  otherProxy?: string;
  /** Inside <Location path>: ProxyPass there takes no path argument. */
  location?: { path: string; regex: boolean };
}

const ACCESS = new Set(['require', 'order', 'allow', 'deny', 'satisfy', 'authtype', 'authname', 'authuserfile', 'authbasicprovider']);

const SSL_TUNING = new Set([
  'sslprotocol',
  'sslciphersuite',
  'sslhonorcipherorder',
  'sslcompression',
  'sslsessiontickets',
  'sslusestapling',
  'sslstaplingcache',
  'sslopensslconfcmd',
  'sslcacertificatefile',
  'sslcacertificatepath',
  'sslverifydepth',
  'sslstrictsnivhostcheck',
  'sslinsecurerenegotiation',
  'sslcarevocationfile',
  'sslcarevocationpath',
  'sslcarevocationcheck',
]);

const PROXY_TRUST = new Set(['sslproxyverify', 'sslproxycheckpeername', 'sslproxycheckpeercn', 'sslproxycheckpeerexpire', 'sslproxycacertificatefile', 'sslproxycacertificatepath']);

/** Directives handled natively or harmless: accepted without a word. */
const SILENT = new Set(['proxywebsocketfallbacktoproxyhttp', 'sslproxyengine']);

/** Hints for proxy directives servoy-lb has no setting for. */
const UNSUPPORTED_HINTS: Record<string, string> = {
  proxyerroroverride: 'servoy-lb passes the backends\' error responses through; its own error pages (errorPages) cover only the errors it produces',
  proxystatus: 'use `servoy-lb status` and the admin API\'s /metrics instead',
  proxyhcexpr: 'health checks accept the statuses in healthCheck.expectStatus (default "200-399")',
  proxyhctemplate: 'set the health check in healthCheck',
  proxyvia: 'servoy-lb sends X-Forwarded-For, -Proto and -Host instead',
  balancerpersist: 'admin changes (drain, disable, added backends) always persist in servoy-lb\'s state store',
  balancergrowth: 'add backends at run time with `servoy-lb backends add`',
  proxypassinherit: 'servoy-lb has one pool for every request',
  balancerinherit: 'servoy-lb has one pool for every request',
};

/** extractSetup walks the parsed config and returns its facts. */
export function extractSetup(nodes: readonly ApacheNode[]): ApacheSetup {
  const setup: ApacheSetup = {
    balancers: new Map(),
    workerSettings: [],
    routes: [],
    vhosts: [],
    serverSsl: emptySsl(),
    listens: [],
    timeouts: [],
    includes: [],
    memberCount: 0,
    warnings: [],
  };
  const warn = (line: number, message: string): void => void setup.warnings.push({ line, message });
  let pendingConditions = false;

  const balancer = (raw: string, line: number): BalancerFact => {
    const url = parseUrl(raw);
    const name = url ? `balancer://${url.host}` : raw;
    const key = name.toLowerCase();
    let found = setup.balancers.get(key);
    if (found === undefined) {
      found = { name, key, line, members: [], settings: [] };
      setup.balancers.set(key, found);
    }
    return found;
  };

  const visitSection = (section: ApacheSection, ctx: Context): void => {
    const arg = section.args[0] ?? '';
    switch (section.key) {
      case 'virtualhost': {
        const vhost: VhostFact = { line: section.line, addresses: section.args.map(parseAddress), ssl: emptySsl() };
        setup.vhosts.push(vhost);
        visitAll(section.children, { vhost });
        return;
      }
      case 'proxy': {
        const url = parseUrl(arg);
        if (url?.scheme === 'balancer') {
          visitAll(section.children, { ...ctx, balancer: balancer(arg, section.line).key, worker: undefined, otherProxy: undefined });
        } else if (url !== undefined) {
          visitAll(section.children, { ...ctx, worker: url, balancer: undefined, otherProxy: undefined });
        } else {
          visitAll(section.children, { ...ctx, otherProxy: `<Proxy ${arg}>`, balancer: undefined, worker: undefined });
        }
        return;
      }
      case 'proxymatch':
        warn(section.line, `<ProxyMatch ${arg}> (a regular-expression <Proxy>) is not converted; its directives are read as if outside it`);
        visitAll(section.children, { ...ctx, otherProxy: `<ProxyMatch ${arg}>`, balancer: undefined, worker: undefined });
        return;
      case 'location':
      case 'locationmatch': {
        const regex = section.key === 'locationmatch' || arg === '~';
        const path = arg === '~' ? (section.args[1] ?? '') : arg;
        visitAll(section.children, { ...ctx, location: { path, regex } });
        return;
      }
      default:
        // <IfModule>, <IfDefine>, <Directory>, ... and unknown sections are read through:
        // better a directive read out of its context than one silently dropped.
        visitAll(section.children, ctx);
    }
  };

  const visitDirective = (d: ApacheDirective, ctx: Context): void => {
    const ssl = ctx.vhost?.ssl ?? setup.serverSsl;
    const args = d.args;
    switch (d.key) {
      case 'balancermember': {
        let rest = args;
        let key = ctx.balancer;
        if (rest[0] !== undefined && parseUrl(rest[0])?.scheme === 'balancer') {
          key = balancer(rest[0], d.line).key;
          rest = rest.slice(1);
        }
        if (key === undefined) {
          warn(d.line, 'BalancerMember outside <Proxy "balancer://..."> and without a balancer:// URL belongs to no balancer; ignored');
          return;
        }
        const url = parseUrl(rest[0] ?? '');
        if (url === undefined || url.scheme === 'balancer') {
          warn(d.line, `BalancerMember ${JSON.stringify(rest[0] ?? '')} is not a worker URL such as "http://10.0.0.11:8080"; ignored`);
          return;
        }
        setup.balancers.get(key)!.members.push({ line: d.line, balancer: key, url, params: parseParams(rest.slice(1)) });
        setup.memberCount++;
        return;
      }
      case 'proxyset': {
        let rest = args;
        let target: { balancer: string } | { worker: ApacheUrl } | undefined = ctx.balancer !== undefined ? { balancer: ctx.balancer } : ctx.worker !== undefined ? { worker: ctx.worker } : undefined;
        const first = rest[0] !== undefined && !rest[0].includes('=') ? parseUrl(rest[0]) : undefined;
        if (first !== undefined) {
          target = first.scheme === 'balancer' ? { balancer: balancer(rest[0]!, d.line).key } : { worker: first };
          rest = rest.slice(1);
        }
        if (target === undefined) {
          warn(d.line, ctx.otherProxy !== undefined ? `ProxySet inside ${ctx.otherProxy} is not converted; ignored` : 'ProxySet outside <Proxy> and without a URL applies to nothing; ignored');
          return;
        }
        const params = parseParams(rest);
        if ('balancer' in target) {
          const fact = setup.balancers.get(target.balancer)!;
          for (const param of params) fact.settings.push({ line: d.line, directive: 'ProxySet', param });
        } else {
          setup.workerSettings.push({ line: d.line, url: target.worker, params });
        }
        return;
      }
      case 'proxypass':
      case 'proxypassmatch': {
        const inLocation = ctx.location !== undefined && (args[0] === '!' || parseUrl(args[0] ?? '') !== undefined);
        const path = inLocation ? ctx.location!.path : (args[0] ?? '');
        const targetText = inLocation ? args[0] : args[1];
        const regex = d.key === 'proxypassmatch' || (inLocation && ctx.location!.regex);
        const params = parseParams(args.slice(inLocation ? 1 : 2));
        if (targetText === undefined) {
          warn(d.line, `${d.name} without a target URL; ignored`);
          return;
        }
        const route: RouteFact = { line: d.line, directive: d.name, path, regex, target: { kind: 'exclude' }, params };
        if (ctx.vhost) route.vhost = ctx.vhost;
        if (targetText !== '!') {
          const url = parseUrl(targetText);
          if (url === undefined) {
            warn(d.line, `${d.name} target ${JSON.stringify(targetText)} is not a URL; ignored`);
            return;
          }
          if (url.scheme === 'balancer') {
            const fact = balancer(targetText, d.line);
            route.target = { kind: 'balancer', key: fact.key, name: fact.name, path: url.path };
            for (const param of params) if (param.value !== undefined) fact.settings.push({ line: d.line, directive: d.name, param });
          } else {
            route.target = { kind: 'url', url };
          }
        }
        setup.routes.push(route);
        return;
      }
      case 'rewritecond':
        pendingConditions = true;
        return;
      case 'rewriterule': {
        const conditional = pendingConditions;
        pendingConditions = false;
        const [pattern = '', substitution = '', flagText = ''] = args;
        const flags = flagText.replace(/^\[|\]$/g, '').split(',').map((f) => f.trim().toLowerCase());
        const url = parseUrl(substitution);
        if (flags.includes('p') || flags.includes('proxy')) {
          if (url === undefined) {
            warn(d.line, `RewriteRule [P] to ${JSON.stringify(substitution)} is not converted (no absolute URL)`);
            return;
          }
          const route: RouteFact = { line: d.line, directive: 'RewriteRule', path: pattern, regex: true, target: { kind: 'url', url }, params: [], conditional };
          if (url.scheme === 'balancer') {
            const fact = balancer(substitution, d.line);
            route.target = { kind: 'balancer', key: fact.key, name: fact.name, path: url.path };
          }
          if (ctx.vhost) route.vhost = ctx.vhost;
          setup.routes.push(route);
        } else if (url?.scheme === 'https' && flags.some((f) => /^r(=\d+)?$/.test(f) || f.startsWith('redirect'))) {
          if (ctx.vhost) ctx.vhost.redirectsToHttps ??= d.line;
        }
        return;
      }
      case 'redirect':
      case 'redirectpermanent':
      case 'redirectmatch': {
        const rest = /^(permanent|temp|seeother|gone|\d{3})$/i.test(args[0] ?? '') ? args.slice(1) : args;
        const target = rest[rest.length - 1] ?? '';
        if (ctx.vhost && /^https:\/\//i.test(target) && rest.length >= 2) ctx.vhost.redirectsToHttps ??= d.line;
        return;
      }
      case 'proxypassreverse':
      case 'proxypassreversecookiepath':
      case 'proxypassreversecookiedomain': {
        const inLocation = ctx.location !== undefined && args.length === 1;
        const from = inLocation ? ctx.location!.path : (args[0] ?? '');
        const to = inLocation ? args[0]! : (args[1] ?? '');
        if (d.key === 'proxypassreverse') {
          const url = parseUrl(to);
          const toPath = url ? url.path : to;
          if (normalizePath(from) !== normalizePath(toPath)) {
            warn(d.line, `ProxyPassReverse ${from} ${to} rewrites redirect paths; servoy-lb forwards paths unchanged and does not rewrite Location headers`);
          }
        } else if (from !== to) {
          warn(d.line, `${d.name} ${from} ${to} is not supported (servoy-lb does not rewrite cookies); ignored`);
        }
        return;
      }
      case 'proxypreservehost':
        if (!isOn(args[0])) warn(d.line, 'ProxyPreserveHost Off: servoy-lb always preserves the Host header (Servoy needs it, e.g. to accept WebSockets whose Origin matches the Host)');
        return;
      case 'proxyrequests':
        if (isOn(args[0])) warn(d.line, 'ProxyRequests On (forward proxy) is not supported: servoy-lb is a reverse proxy only');
        return;
      case 'proxyaddheaders':
        if (!isOn(args[0])) warn(d.line, 'ProxyAddHeaders Off: servoy-lb always sets X-Forwarded-For, -Proto and -Host');
        return;
      case 'timeout':
      case 'proxytimeout':
      case 'keepalivetimeout':
      case 'proxywebsocketidletimeout': {
        const ms = parseTimeout(args[0] ?? '');
        if (ms === undefined) {
          warn(d.line, `${d.name} ${args.join(' ')}: not a timeout; ignored`);
          return;
        }
        const fact: ApacheSetup['timeouts'][number] = { key: d.key, ms, line: d.line };
        if (ctx.vhost) fact.vhost = ctx.vhost;
        setup.timeouts.push(fact);
        return;
      }
      case 'listen': {
        const address = parseAddress(args[0] ?? '');
        if (address.port === undefined) {
          warn(d.line, `Listen ${args.join(' ')}: no port; ignored`);
          return;
        }
        const fact: ListenFact = { line: d.line, port: address.port };
        if (address.host !== undefined) fact.host = address.host;
        if (args[1] !== undefined) fact.protocol = args[1].toLowerCase();
        setup.listens.push(fact);
        return;
      }
      case 'sslengine':
        ssl.engine = { value: isOn(args[0]), line: d.line };
        return;
      case 'sslcertificatefile':
        if (ssl.cert === undefined) ssl.cert = { value: args[0] ?? '', line: d.line };
        else ssl.extraCerts.push(d.line);
        return;
      case 'sslcertificatekeyfile':
        ssl.key ??= { value: args[0] ?? '', line: d.line };
        return;
      case 'sslcertificatechainfile':
        ssl.chain = { value: args[0] ?? '', line: d.line };
        return;
      case 'sslverifyclient':
        ssl.verifyClient = { value: args[0] ?? '', line: d.line };
        return;
      case 'header':
        header(d);
        return;
      case 'logformat':
      case 'customlog':
      case 'transferlog':
        warn(d.line, `${d.name} ${args.join(' ')}: Apache's access log is not converted (servoy-lb writes its own log); ignored`);
        return;
      case 'requestheader': {
        const name = args.find((a, i) => i > 0 && !/^(early|always|onsuccess)$/i.test(a) && !/^(set|add|append|merge|unset|edit\*?|setifempty)$/i.test(a)) ?? '';
        if (/^x-forwarded-(for|proto|host)$/i.test(name)) warn(d.line, `RequestHeader ${args.join(' ')}: servoy-lb sets X-Forwarded-For, -Proto and -Host itself; ignored`);
        else warn(d.line, `RequestHeader ${args.join(' ')}: servoy-lb does not change request headers; ignored`);
        return;
      }
      case 'sethandler':
        if (/^balancer-manager$/i.test(args[0] ?? '')) warn(d.line, 'SetHandler balancer-manager: use servoy-lb\'s admin dashboard (admin.host:admin.port) and the `servoy-lb status`, `drain`, `disable` commands instead');
        return;
      case 'include':
      case 'includeoptional':
        setup.includes.push(args[0] ?? '');
        warn(d.line, `${d.name} ${args[0] ?? ''} is not followed: convert the file that holds the <Proxy "balancer://..."> section, or concatenate the files first`);
        return;
      case 'errordocument':
        if (['400', '403', '404', '431', '502', '503', '504'].includes(args[0] ?? '')) {
          warn(d.line, `ErrorDocument ${args[0]} ${args[1] ?? ''}: servoy-lb shows HTML files for the errors it produces; set errorPages."${args[0]}" to the page's file`);
        }
        return;
      default:
        break;
    }

    if (SSL_TUNING.has(d.key)) {
      ssl.tuning.push({ value: d.name, line: d.line });
      return;
    }
    if (PROXY_TRUST.has(d.key)) {
      ssl.proxyTrust.push({ value: `${d.name} ${args.join(' ')}`, line: d.line });
      return;
    }
    if (ACCESS.has(d.key)) {
      const open = /^all\s+granted$/i.test(args.join(' ')) || /^from\s+all$/i.test(args.join(' ')) || d.key === 'order' || d.key === 'satisfy';
      if (ctx.balancer !== undefined && !open) {
        warn(d.line, `${d.name} ${args.join(' ')} inside <Proxy "${setup.balancers.get(ctx.balancer)!.name}">: servoy-lb has no access control for clients; restrict them with a firewall`);
      }
      return;
    }
    if (SILENT.has(d.key)) return;
    if (d.key.startsWith('proxy') || d.key.startsWith('balancer')) {
      const hint = UNSUPPORTED_HINTS[d.key];
      warn(d.line, `${d.name} is not supported by servoy-lb; ignored${hint ? ` (${hint})` : ''}`);
      return;
    }
    if (ctx.balancer !== undefined) {
      warn(d.line, `${d.name} inside <Proxy "${setup.balancers.get(ctx.balancer)!.name}"> is not converted; ignored`);
    }
  };

  /** header recognises the route-cookie recipe; other Header directives do not concern the balancer. */
  const header = (d: ApacheDirective): void => {
    const args = /^(always|onsuccess)$/i.test(d.args[0] ?? '') ? d.args.slice(1) : d.args;
    const [action = '', name = '', value = ''] = args;
    const mentionsBalancer = d.args.some((a) => /BALANCER_/.test(a));
    if (/^(add|set|append|merge|setifempty)$/i.test(action) && /^set-cookie$/i.test(name) && /%\{BALANCER_WORKER_ROUTE\}e/.test(value)) {
      const cookie = parseRouteCookie(value);
      if (cookie !== undefined) {
        setup.routeCookie = { value: cookie, line: d.line };
        return;
      }
    }
    if (mentionsBalancer) warn(d.line, `Header ${d.args.join(' ')} uses balancer variables servoy-lb does not have; ignored`);
    else warn(d.line, `Header ${d.args.join(' ')}: servoy-lb does not change response headers; set it on the Servoy servers (Tomcat) if it is needed; ignored`);
  };

  const visitAll = (nodes: readonly ApacheNode[], ctx: Context): void => {
    for (const node of nodes) {
      if (node.kind === 'section') visitSection(node, ctx);
      else visitDirective(node, ctx);
    }
  };

  visitAll(nodes, {});
  return setup;
}

function emptySsl(): SslFact {
  return { extraCerts: [], tuning: [], proxyTrust: [] };
}

/** parseAddress reads `80`, `*:443`, `_default_:443`, `10.0.0.5:80`, `[::1]:8080`, `*`. */
export function parseAddress(raw: string): { host?: string; port?: number; raw: string } {
  let host: string | undefined = raw;
  let portText: string | undefined;
  if (/^\d+$/.test(raw)) {
    host = undefined;
    portText = raw;
  } else if (raw.startsWith('[')) {
    const close = raw.indexOf(']');
    host = raw.slice(1, close === -1 ? undefined : close);
    const rest = close === -1 ? '' : raw.slice(close + 1);
    if (rest.startsWith(':')) portText = rest.slice(1);
  } else {
    const colon = raw.lastIndexOf(':');
    if (colon !== -1) {
      host = raw.slice(0, colon);
      portText = raw.slice(colon + 1);
    }
  }
  if (host === '*' || host === '_default_' || host === '' || host === '0.0.0.0') host = undefined;
  const out: { host?: string; port?: number; raw: string } = { raw };
  if (host !== undefined) out.host = host;
  if (portText !== undefined && /^\d{1,5}$/.test(portText) && Number(portText) <= 65535) out.port = Number(portText);
  return out;
}
