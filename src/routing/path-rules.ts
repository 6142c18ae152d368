/**
 * Path rules (`paths` in lb.config.json, SPEC "Path rules"): compiled once per config load
 * or reload, matched per request against the normalised path (./path-normalise.ts) by
 * longest prefix. Pure: no I/O, no clock.
 *
 * Prefixes match on segment boundaries, with or without a trailing "/": `/servoy-admin/`
 * and `/servoy-admin` both match `/servoy-admin`, `/servoy-admin/` and everything below,
 * never `/servoy-administrator`. The path without its slash matters: a servlet mapped to
 * `/servoy-admin/*` also serves `/servoy-admin` itself (Servlet spec 12.2), so a rule
 * that missed it would be bypassed. Matching is case-sensitive, as Tomcat's is.
 */
import { TrustedProxies } from '../proxy/trusted-proxies.js';
import { normalisePath } from './path-normalise.js';

/** PathRuleKind is what a rule does: `stateless` (affinity "none"), `allow` (CIDR list) or `deny`. */
export type PathRuleKind = 'stateless' | 'allow' | 'deny';

/** PathRuleInput is one validated `paths` entry, as the config schema gives it. */
export interface PathRuleInput {
  readonly prefix: string;
  readonly affinity?: 'none' | undefined;
  readonly allow?: readonly string[] | undefined;
  readonly deny?: boolean | undefined;
}

/** PathRule is one compiled rule. */
export interface PathRule {
  /** The prefix as configured (also the Path of the backend-choice cookie). */
  readonly prefix: string;
  readonly kind: PathRuleKind;
  /** Position in `paths`, for messages. */
  readonly index: number;
  /** With kind allow: the addresses and CIDRs allowed. */
  readonly allow: readonly string[];
}

interface CompiledRule extends PathRule {
  readonly allowList: TrustedProxies | undefined;
}

/** ruleKey is a prefix without its trailing "/": the form prefixes are looked up by ("" for "/"). */
export function ruleKey(prefix: string): string {
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/** kindOf is the kind of a validated rule (the config checks say it has exactly one). */
export function kindOf(input: PathRuleInput): PathRuleKind {
  if (input.affinity === 'none') return 'stateless';
  if (input.deny === true) return 'deny';
  return 'allow';
}

/**
 * PathRules is the compiled `paths` list. Lookup walks the normalised path's segment
 * boundaries from the longest to "/" with one Map lookup each: O(depth), whatever the
 * number of rules, so the first hit is the longest matching prefix.
 */
export class PathRules {
  readonly rules: readonly PathRule[];
  /** Whether some rule is `affinity: "none"` (the proxy then counts requests in flight). */
  readonly hasStateless: boolean;
  readonly #byKey: ReadonlyMap<string, CompiledRule>;

  private constructor(rules: CompiledRule[]) {
    this.rules = rules;
    this.hasStateless = rules.some((r) => r.kind === 'stateless');
    // A later duplicate (refused by the config checks) never replaces the first.
    const byKey = new Map<string, CompiledRule>();
    for (const rule of rules) if (!byKey.has(ruleKey(rule.prefix))) byKey.set(ruleKey(rule.prefix), rule);
    this.#byKey = byKey;
  }

  /**
   * compile builds the rules of a validated config; undefined for an empty list, so the
   * proxy skips normalisation entirely for users without rules.
   */
  static compile(inputs: readonly PathRuleInput[] | undefined): PathRules | undefined {
    if (inputs === undefined || inputs.length === 0) return undefined;
    return new PathRules(
      inputs.map((input, index) => {
        const kind = kindOf(input);
        const allow = kind === 'allow' ? [...(input.allow ?? [])] : [];
        return Object.freeze({ prefix: input.prefix, kind, index, allow, allowList: kind === 'allow' ? new TrustedProxies(allow) : undefined });
      }),
    );
  }

  /** match is the rule with the longest prefix matching a normalised path, or undefined. */
  match(path: string): PathRule | undefined {
    const byKey = this.#byKey;
    let key = ruleKey(path);
    for (;;) {
      const rule = byKey.get(key);
      if (rule !== undefined) return rule;
      if (key === '') return undefined;
      key = key.slice(0, key.lastIndexOf('/'));
    }
  }

  /** allows says whether a client address may use an `allow` rule's paths (false for other kinds). */
  allows(rule: PathRule, clientAddress: string): boolean {
    return (rule as CompiledRule).allowList?.trusts(clientAddress) ?? false;
  }
}

/**
 * PathVerdict is what the path rules say about one request: no rule applies, the path
 * cannot be normalised safely (400), the client may not use it (403), it is stateless
 * traffic, or an `allow` rule let this client through.
 */
export type PathVerdict =
  | { readonly kind: 'none' }
  | { readonly kind: 'bad-path'; readonly reason: string }
  | { readonly kind: 'denied'; readonly rule: PathRule }
  | { readonly kind: 'stateless'; readonly rule: PathRule }
  | { readonly kind: 'allowed'; readonly rule: PathRule };

const NONE: PathVerdict = Object.freeze({ kind: 'none' });

/** judgePath is the verdict of the rules on a request target from a client address (after trustedProxies). */
export function judgePath(rules: PathRules, target: string, clientAddress: string): PathVerdict {
  const normalised = normalisePath(target);
  if (!normalised.ok) return { kind: 'bad-path', reason: normalised.reason };
  const rule = rules.match(normalised.path);
  if (rule === undefined) return NONE;
  switch (rule.kind) {
    case 'deny':
      return { kind: 'denied', rule };
    case 'stateless':
      return { kind: 'stateless', rule };
    case 'allow':
      return rules.allows(rule, clientAddress) ? { kind: 'allowed', rule } : { kind: 'denied', rule };
  }
}

/** PathExplanation says what the path rules do with a path, for `servoy-lb route --path` and GET /api/route. */
export interface PathExplanation {
  /** The path as asked about. */
  readonly path: string;
  /** The normalised path rules are matched against; null when it cannot be normalised. */
  readonly normalised: string | null;
  /** The rule that applies (longest prefix), or null. */
  readonly rule: { readonly prefix: string; readonly kind: PathRuleKind } | null;
  /**
   * allowed / denied: an `allow` or `deny` rule's answer for the client; restricted: an
   * `allow` rule and no client address to check; bad-path: 400; stateless: affinity
   * "none"; none: no rule applies (normal routing).
   */
  readonly verdict: 'allowed' | 'denied' | 'restricted' | 'bad-path' | 'stateless' | 'none';
  readonly reason: string;
}

/**
 * explainPath says in words what the path rules do with a path (and, for an `allow`
 * rule, with a client address). Not on the request path: it allocates freely.
 */
export function explainPath(rules: PathRules | undefined, path: string, clientAddress?: string): PathExplanation {
  const normalised = normalisePath(path);
  if (!normalised.ok) {
    return { path, normalised: null, rule: null, verdict: 'bad-path', reason: `the path cannot be normalised safely (${normalised.reason}): the client gets 400` };
  }
  const rule = rules?.match(normalised.path);
  const base = { path, normalised: normalised.path };
  if (rules === undefined || rule === undefined) {
    return { ...base, rule: null, verdict: 'none', reason: rules === undefined ? 'no path rules are configured: normal routing' : 'no path rule matches: normal routing' };
  }
  const where = `paths[${rule.index}] (prefix ${JSON.stringify(rule.prefix)})`;
  const ruleOut = { prefix: rule.prefix, kind: rule.kind };
  switch (rule.kind) {
    case 'deny':
      return { ...base, rule: ruleOut, verdict: 'denied', reason: `${where} denies everyone: the client gets 403 and no backend sees the request` };
    case 'stateless':
      return {
        ...base,
        rule: ruleOut,
        verdict: 'stateless',
        reason: `${where} is stateless (affinity "none"): no affinity cookie, not counted as a session; it goes to the backend taking new sessions with the fewest requests in flight`,
      };
    case 'allow': {
      const list = rule.allow.join(', ');
      if (clientAddress === undefined || clientAddress === '') {
        return { ...base, rule: ruleOut, verdict: 'restricted', reason: `${where} allows only ${list}; give a client address to check one` };
      }
      return rules.allows(rule, clientAddress)
        ? { ...base, rule: ruleOut, verdict: 'allowed', reason: `${where} allows ${clientAddress} (in ${list}): normal routing, or the backend chosen with ?servoy-lb-backend=ID` }
        : { ...base, rule: ruleOut, verdict: 'denied', reason: `${where} allows only ${list}; ${clientAddress} gets 403` };
    }
  }
}
