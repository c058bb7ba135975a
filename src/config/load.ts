/**
 * Config loading: YAML file → environment overrides → schema validation.
 * Every error names the key path (or the environment variable) and the bad value.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseJsonConfig } from './json-config.js';
import { gatewayConfigSchema, type GatewayConfig } from './schema.js';

export interface ConfigIssue {
  /** Dotted key path with [i] indexes, e.g. projects[0].apiProxies[1].basePath. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(source: string, issues: readonly ConfigIssue[]) {
    super(`invalid configuration in ${source}:\n` + issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** projects[0].apiProxies[1].basePath from ['projects', 0, 'apiProxies', 1, 'basePath']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

/** Converts zod issues into path-named issues that quote the offending value. */
export function zodIssues(error: z.ZodError, envSources: ReadonlyMap<string, string> = new Map()): ConfigIssue[] {
  return error.issues.map((issue) => {
    const path = formatPath(issue.path);
    const fromEnv = envSources.get(path);
    const input = (issue as { input?: unknown }).input;
    const value = issue.code === 'unrecognized_keys' ? '' : ` (got ${describeValue(input)})`;
    return { path, message: issue.message + value + (fromEnv !== undefined ? ` [set by ${fromEnv}]` : '') };
  });
}

/** Environment variables that override the file, for containers. */
export const ENV_OVERRIDES = {
  IPGATE_LISTEN: 'listen',
  IPGATE_ENVIRONMENT: 'environment',
  IPGATE_NODE_ID: 'nodeId',
  IPGATE_TRUSTED_PROXIES: 'trustedProxies',
  IPGATE_TLS_CERT: 'tls.certFile',
  IPGATE_TLS_KEY: 'tls.keyFile',
  IPGATE_LOG_LEVEL: 'log.level',
  IPGATE_ACCESS_LOG: 'log.access',
  IPGATE_ACCESS_LOG_SAMPLE_RATE: 'log.sampleRate',
  IPGATE_DRAIN_TIMEOUT_MS: 'drainTimeoutMs',
  IPGATE_WORKERS: 'workers',
  IPGATE_CONTROL_PLANE: 'controlPlane',
  IPGATE_CONTROL_PLANE_NICE: 'controlPlaneNice',
  IPGATE_CONTROL_PLANE_PACING: 'controlPlanePacing',
  IPGATE_ADMIN_LISTEN: 'admin.listen',
  IPGATE_STORE: 'store.file',
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** Overrides whose key holds a number. */
const NUMERIC_ENV_KEYS: ReadonlySet<string> = new Set(['drainTimeoutMs', 'log.sampleRate', 'workers', 'controlPlaneNice']);

/** Overrides whose key holds a boolean: "true" or "false"; anything else is reported by the schema. */
const BOOLEAN_ENV_KEYS: ReadonlySet<string> = new Set(['controlPlanePacing']);

function applyEnv(raw: Record<string, unknown>, env: Env, conflicts: ConfigIssue[]): Map<string, string> {
  const sources = new Map<string, string>();
  const setPath = (dotted: string, value: unknown, name: string) => {
    const keys = dotted.split('.');
    let obj: Record<string, unknown> = raw;
    for (let i = 0; i < keys.length - 1; i++) {
      const k = keys[i]!;
      const next = obj[k];
      if (next !== null && next !== undefined && (typeof next !== 'object' || Array.isArray(next))) {
        // The file gives a scalar or a list where a mapping belongs ("log: debug"). Replacing it
        // with the variable's mapping would hide that error instead of reporting it.
        conflicts.push({ path: keys.slice(0, i + 1).join('.'), message: `must be a mapping, not ${JSON.stringify(next)} (${name} sets ${dotted} inside it)` });
        return;
      }
      if (next === null || next === undefined) obj[k] = {};
      obj = obj[k] as Record<string, unknown>;
    }
    obj[keys[keys.length - 1]!] = value;
    sources.set(dotted, name);
  };
  for (const [name, key] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    if (key === 'trustedProxies') {
      // An empty variable counts as unset (as for every variable), so "trust no proxy" is spelled out.
      const list = v.trim() === 'none' ? [] : v.split(',').map((s) => s.trim()).filter((s) => s !== '');
      setPath(key, list, name);
      list.forEach((_, i) => sources.set(`${key}[${i}]`, name));
    } else if (name === 'IPGATE_STORE') {
      // One variable selects the store: a postgres:// URL the cluster store, anything else a file.
      const pg = /^postgres(ql)?:\/\//i.test(v);
      setPath(pg ? 'store.postgres.url' : 'store.file', v, name);
      setPath(pg ? 'store.file' : 'store.postgres', null, name);
    } else if (BOOLEAN_ENV_KEYS.has(key)) {
      const t = v.trim();
      setPath(key, t === 'true' ? true : t === 'false' ? false : v, name);
    } else if (NUMERIC_ENV_KEYS.has(key)) {
      // A number-looking value becomes a number, so the schema checks its range; anything else
      // stays a string and is reported as not a number, naming the variable.
      setPath(key, /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v, name);
    } else {
      setPath(key, v, name);
    }
  }
  // IPGATE_ADMIN_TOKEN adds one admin token; only its hash is kept.
  const token = env.IPGATE_ADMIN_TOKEN;
  if (token !== undefined && token !== '') {
    const isMap = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
    const absent = (v: unknown) => v === null || v === undefined;
    // As in setPath: a wrongly typed value in the file is reported, not replaced.
    if (!absent(raw.admin) && !isMap(raw.admin)) {
      conflicts.push({ path: 'admin', message: `must be a mapping, not ${JSON.stringify(raw.admin)} (IPGATE_ADMIN_TOKEN adds to admin.tokens inside it)` });
      return sources;
    }
    const admin = (isMap(raw.admin) ? raw.admin : (raw.admin = {})) as Record<string, unknown>;
    if (!absent(admin.tokens) && !Array.isArray(admin.tokens)) {
      conflicts.push({ path: 'admin.tokens', message: `must be a list, not ${JSON.stringify(admin.tokens)} (IPGATE_ADMIN_TOKEN adds to it)` });
      return sources;
    }
    const tokens = Array.isArray(admin.tokens) ? (admin.tokens as unknown[]) : (admin.tokens = []) as unknown[];
    sources.set(`admin.tokens[${tokens.length}]`, 'IPGATE_ADMIN_TOKEN');
    tokens.push({ name: 'env', sha256: createHash('sha256').update(token).digest('hex'), role: 'admin' });
  }
  return sources;
}

/** Parse and validate config text. Throws ConfigError naming every bad key. */
export function parseConfigText(text: string, source: string, env: Env = {}): GatewayConfig {
  const raw = parseJsonConfig(text) ?? parseYaml(text, source);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'the document must be a mapping' }]);
  }
  const conflicts: ConfigIssue[] = [];
  const sources = applyEnv(raw as Record<string, unknown>, env, conflicts);
  const parsed = gatewayConfigSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ConfigError(source, [...conflicts, ...zodIssues(parsed.error, sources)]);
  if (conflicts.length > 0) throw new ConfigError(source, conflicts);
  return parsed.data;
}

/** The YAML loader: every text that is not a plain JSON object (see json-config.ts). */
function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: '(yaml)', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  return doc.toJS({ maxAliasCount: 100 }) ?? {};
}

/** Load the config file named by `path` (or IPGATE_CONFIG), applying environment overrides. */
export function loadConfig(path: string | undefined, env: Env = process.env): { config: GatewayConfig; path: string } {
  const file = path ?? env.IPGATE_CONFIG;
  if (file === undefined || file === '') {
    throw new ConfigError('(no file)', [{ path: '', message: 'no config file given: pass --config FILE or set IPGATE_CONFIG' }]);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read file: ${(err as Error).message}` }]);
  }
  return { config: parseConfigText(text, file, env), path: file };
}
