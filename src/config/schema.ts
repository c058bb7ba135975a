/**
 * The one set of boundary schemas. The YAML config and (later) the apiops admin bodies are
 * validated with these, so an error names the same field path in both places
 * (e.g. `policy.ipList[3]: 10.0.0.1/8: host bits set, did you mean 10.0.0.0/8?`).
 *
 * Objects are strict: an unknown key is an error, because a typo in a security policy
 * ("ipLsit") must not silently become an empty list.
 */
import { hostname } from 'node:os';
import { Script } from 'node:vm';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';
import { endpointPatternError } from '../policy/endpoint-pattern.js';
import { parseIpEntry, scanIpEntry } from '../policy/ip-entry.js';
import { pace } from '../policy/pace.js';
import {
  ENDPOINT_METHODS,
  IP_CONTEXT_VALUES,
  IP_ENTRY_ACTIONS,
  IP_VARIABLE_TYPES,
  POLICY_TYPES,
  TARGET_PIPELINES,
  TARGET_SCOPES,
} from '../policy/model.js';

/** Names of projects, proxies, policies, groups and environments: safe in URLs, logs and metrics. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const nameSchema = z.string().regex(NAME_RE, 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit');

/**
 * A list of environment names, each named once. Environment names are case-insensitive (the store
 * and the admin API match them so), so "production" and "PRODUCTION" are one environment: a repeat
 * would deploy it once per copy, and each copy would push a rollback entry out of the history.
 */
export const environmentNamesSchema = z.array(nameSchema).superRefine((names, ctx) => {
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    const j = first.get(name.toLowerCase());
    if (j === undefined) first.set(name.toLowerCase(), i);
    else ctx.addIssue({ code: 'custom', path: [i], message: `${name}: the same environment as [${j}] (names are case-insensitive)` });
  });
});

const byteLength = (max: number) => (s: string) => Buffer.byteLength(s, 'utf8') <= max;

const scanScratch = new Uint32Array(4);

/**
 * One ipList entry: validated by the same parser the compiler uses. A plain address or CIDR is
 * accepted by scanIpEntry without allocating (a 100,000-entry admin write validates every entry);
 * anything else, and every error, goes through parseIpEntry.
 */
export const ipEntrySchema = z.string().superRefine((text, ctx) => {
  pace();
  if (scanIpEntry(text, scanScratch) >= 0) return;
  const r = parseIpEntry(text);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
});

export const operationMetadataSchema = z
  .strictObject({
    targetScope: z.enum(TARGET_SCOPES),
    targetPipeline: z.enum(TARGET_PIPELINES),
    targetEndpoint: z.string().optional(),
    targetEndpointHTTPMethod: z.enum(ENDPOINT_METHODS).optional(),
    deploy: z.boolean().optional(),
    deployTargetEnvironmentNameList: environmentNamesSchema.optional(),
    order: z.number().int().min(1, 'order is 1-based: must be >= 1').nullable().optional(),
  })
  .superRefine((m, ctx) => {
    if (m.targetScope === 'ENDPOINT') {
      if (m.targetEndpoint === undefined) ctx.addIssue({ code: 'custom', path: ['targetEndpoint'], message: 'required when targetScope is ENDPOINT' });
      if (m.targetEndpointHTTPMethod === undefined)
        ctx.addIssue({ code: 'custom', path: ['targetEndpointHTTPMethod'], message: 'required when targetScope is ENDPOINT' });
    }
    if (m.targetEndpoint !== undefined) {
      const why = endpointPatternError(m.targetEndpoint);
      if (why !== null) ctx.addIssue({ code: 'custom', path: ['targetEndpoint'], message: why });
    }
  });

export const targetVariableSchema = z
  .strictObject({
    type: z.enum(IP_VARIABLE_TYPES),
    headerName: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name (RFC 9110 token)').optional(),
    paramName: z.string().min(1).max(256).optional(),
    bodyPath: z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, 'must be a dotted path such as "client.ip"').optional(),
    contextValue: z.enum(IP_CONTEXT_VALUES).optional(),
    script: z.string().min(1).max(64 * 1024).optional(),
    trustUntrustedPeers: z.boolean().optional(),
  })
  .superRefine((v, ctx) => {
    const need = (field: 'headerName' | 'paramName' | 'bodyPath' | 'contextValue' | 'script') => {
      if (v[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required when type is ${v.type}` });
    };
    if (v.type === 'HEADER') need('headerName');
    if (v.type === 'PARAMETER') need('paramName');
    if (v.type === 'BODY') need('bodyPath');
    if (v.type === 'CONTEXT') need('contextValue');
    if (v.type === 'SCRIPT') {
      need('script');
      if (v.script !== undefined) {
        try {
          new Script(`(${v.script}\n)`);
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['script'], message: `does not compile: ${(err as Error).message}` });
        }
      }
    }
  });

/** The policy object of the apiops body. `name` comes from the URL there, and from here in YAML. */
export const policySchema = z
  .strictObject({
    type: z.enum(POLICY_TYPES),
    name: nameSchema.optional(),
    description: z.string().refine(byteLength(1024), 'at most 1024 bytes').optional(),
    active: z.boolean().optional(),
    enforce: z.boolean().optional(),
    targetVariableForIP: targetVariableSchema.nullable().optional(),
    ipList: z.array(ipEntrySchema).optional(),
    ipGroupIdList: z.array(z.string().min(1).max(128)).optional(),
    rejectStatusCode: z.number().int().min(400).max(599).optional(),
    rejectMessage: z.string().min(1).max(512).optional(),
  })
  .superRefine((p, ctx) => {
    if ((p.ipList?.length ?? 0) === 0 && (p.ipGroupIdList?.length ?? 0) === 0) {
      ctx.addIssue({ code: 'custom', path: ['ipList'], message: 'must contain at least one entry (or reference an IP group in ipGroupIdList)' });
    }
  });

export const policyBindingSchema = z.strictObject({
  operationMetadata: operationMetadataSchema,
  policy: policySchema,
});

const timeoutMs = z.number().int().min(1).max(3_600_000);

export const upstreamSchema = z.strictObject({
  url: z.string().superRefine((s, ctx) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: `not a URL: ${JSON.stringify(s)}` });
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'scheme must be http or https' });
    if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '')
      ctx.addIssue({ code: 'custom', message: 'must not contain a query, fragment or credentials' });
  }),
  connectTimeoutMs: timeoutMs.optional(),
  headersTimeoutMs: timeoutMs.optional(),
  bodyTimeoutMs: timeoutMs.optional(),
});

export const basePathSchema = z
  .string()
  .regex(/^\/([A-Za-z0-9._~!$&'()*+,;=:@-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*)?$/, 'must start with "/", have no empty, "." or ".." segments and no trailing slash')
  .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'must not contain "." or ".." segments');

export const hostSchema = z.string().regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a host name, optionally starting with "*."');

/** A policy as written in YAML: the apiops body, with the policy name inside `policy`. */
const configPolicySchema = policyBindingSchema.superRefine((b, ctx) => {
  if (b.policy.name === undefined) ctx.addIssue({ code: 'custom', path: ['policy', 'name'], message: 'required' });
});

export const apiProxySchema = z.strictObject({
  name: nameSchema,
  description: z.string().max(1024).optional(),
  basePath: basePathSchema,
  hosts: z.array(hostSchema).optional(),
  upstream: upstreamSchema,
  environments: environmentNamesSchema.default(['production']),
  policies: z.array(configPolicySchema).default([]),
});

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time that names a real instant. Each field is checked against the calendar:
 * Date.parse rolls an impossible date over instead of refusing it ("2026-02-30" is March 2,
 * "T24:00:00" the next midnight), so an expiry the admin never wrote would be stored. A leap
 * second (":60") is refused too: Date cannot represent it.
 */
export function isRfc3339(s: string): boolean {
  const m = RFC3339_RE.exec(s);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days === undefined || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) return false;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return !Number.isNaN(Date.parse(s));
}

const rfc3339 = z.string().refine(isRfc3339, 'must be an RFC 3339 timestamp of a real date and time');

export const ipGroupEntrySchema = z.strictObject({
  ip: ipEntrySchema,
  action: z.enum(IP_ENTRY_ACTIONS).optional(),
  description: z.string().refine(byteLength(255), 'at most 255 bytes').optional(),
  metadata: z.string().refine(byteLength(4096), 'at most 4096 bytes').optional(),
  createdBy: z.string().max(256).optional(),
  createdAt: rfc3339.optional(),
  expiresAt: rfc3339.optional(),
});

export const ipGroupSchema = z.strictObject({
  id: z.string().min(1).max(128).optional(),
  name: nameSchema,
  description: z.string().max(1024).optional(),
  entries: z.array(ipGroupEntrySchema).default([]),
});

export const projectSchema = z.strictObject({
  name: nameSchema,
  description: z.string().max(1024).optional(),
  apiProxies: z.array(apiProxySchema).default([]),
  ipGroups: z.array(ipGroupSchema).default([]),
});

/** host:port, where host is an IPv4 address, a bracketed IPv6 address, or a name. */
export const listenSchema = z.string().superRefine((s, ctx) => {
  if (parseListen(s) === null) ctx.addIssue({ code: 'custom', message: `expected host:port (e.g. 0.0.0.0:8080 or [::]:8080), got ${JSON.stringify(s)}` });
});

export function parseListen(s: string): { host: string; port: number } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (m === null) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

const trustedProxySchema = z.string().superRefine((s, ctx) => {
  try {
    proxyaddr.compile(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** The traffic listener's certificate and key (PEM files, reloaded when they change). */
const tlsSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
});

/** A load balancer allowed to send PROXY protocol headers: one address or CIDR, strictly parsed. */
const loadBalancerSchema = z.string().superRefine((text, ctx) => {
  if (text.includes('-') || text.includes('*')) {
    ctx.addIssue({ code: 'custom', message: `${text}: must be an IP address or a CIDR (no ranges or wildcards)` });
    return;
  }
  const r = parseIpEntry(text);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
});

const proxyProtocolSchema = z.strictObject({
  /** Only these peers may send a header; every other connection is closed. Empty would close everything. */
  trustedLoadBalancers: z.array(loadBalancerSchema).min(1, 'must list at least one load balancer address or CIDR'),
  /** From accept until the whole header has arrived; then the connection is closed. */
  headerTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
});

const adminTokenSchema = z.strictObject({
  name: nameSchema,
  /** Hex SHA-256 of the token: tokens are never stored in the clear. `printf %s "$TOKEN" | sha256sum` */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the 64-hex-digit SHA-256 of the token').transform((h) => h.toLowerCase()),
  role: z.enum(['admin', 'viewer']),
});

const adminJwtSchema = z
  .strictObject({
    algorithm: z.enum(['HS256', 'RS256', 'ES256']),
    secret: z.string().min(32, 'an HS256 secret must be at least 32 bytes').optional(),
    publicKeyFile: z.string().min(1).optional(),
    jwksFile: z.string().min(1).optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    roleClaim: z.string().min(1).default('role'),
    clockToleranceSec: z.number().int().min(0).max(600).default(30),
  })
  .superRefine((j, ctx) => {
    if (j.algorithm === 'HS256' && j.secret === undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'required for HS256' });
    if (j.algorithm !== 'HS256' && j.publicKeyFile === undefined && j.jwksFile === undefined)
      ctx.addIssue({ code: 'custom', path: ['publicKeyFile'], message: `publicKeyFile or jwksFile is required for ${j.algorithm}` });
    if (j.algorithm !== 'HS256' && j.secret !== undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: `not used with ${j.algorithm}; pin the algorithm to HS256 to use a secret` });
  });

/** The cluster store's connection and timing (see src/controlplane/store/pg/). */
const postgresStoreSchema = z.strictObject({
  url: z.string().superRefine((u, ctx) => {
    let ok = /^postgres(ql)?:\/\//i.test(u);
    try {
      new URL(u);
    } catch {
      ok = false;
    }
    if (!ok) ctx.addIssue({ code: 'custom', message: 'must be a postgres:// or postgresql:// URL' });
    // The driver percent-decodes the user, password and database: a bare "%" (a password like
    // "50%off") would fail only at connect time, with a message that names nothing.
    else {
      try {
        decodeURIComponent(u);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'has a "%" that is not a percent-escape: write a literal % as %25' });
      }
    }
  }),
  /** Holds the store's tables; created by the migrations. One cluster per schema. */
  schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lower-case letters, digits and "_", starting with a letter or "_", at most 63').default('ipgate'),
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(2_000),
  /** An admin write (queueing included) that PostgreSQL does not finish in time answers 503. */
  writeTimeoutMs: z.number().int().min(100).max(600_000).default(5_000),
  /** How long a write waits for the other nodes to report the new revision. */
  statusWaitMs: z.number().int().min(0).max(600_000).default(5_000),
  pollIntervalMs: z.number().int().min(100).max(3_600_000).default(15_000),
  /** A node not seen for three heartbeats is unreachable. */
  heartbeatMs: z.number().int().min(100).max(600_000).default(2_000),
  /** Opt-in local copy of the last state read, to start during an outage. A security trade-off: see the README. */
  snapshotCache: z.string().min(1).nullable().default(null),
  poolSize: z.number().int().min(2).max(100).default(4),
  /**
   * How many of the newest revisions the `revisions` and `change_log` tables keep: each write
   * deletes the older ones, so the tables stay bounded. A node that is this many revisions behind
   * (or more) no longer finds its revision's write id, and does one full read instead of an
   * incremental one.
   */
  historyRevisions: z.number().int().min(100).max(100_000_000).default(10_000),
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const gatewayConfigSchema = z.strictObject({
  listen: listenSchema.default('0.0.0.0:8080'),
  environment: nameSchema.default('production'),
  /** This node's name in deploymentResults and /apiops/nodes/. Default: the host name. */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, ".", "_", ":" and "-", at most 128')
    .default(() => hostname()),
  /** proxy-addr syntax: loopback, linklocal, uniquelocal, addresses and CIDRs. */
  trustedProxies: z.array(trustedProxySchema).default(['loopback']),
  /** HTTPS on the traffic listener; null: plain HTTP. */
  tls: tlsSchema.nullable().default(null),
  /** PROXY protocol v1/v2 on the traffic listener; null: off. */
  proxyProtocol: proxyProtocolSchema.nullable().default(null),
  limits: z
    .strictObject({
      requestBodyBytes: z.number().int().min(0).default(10 * 1024 * 1024),
      bodyBufferBytes: z.number().int().min(1).default(1024 * 1024),
    })
    .prefault({}),
  upstreamDefaults: z
    .strictObject({
      connectTimeoutMs: timeoutMs.default(5_000),
      headersTimeoutMs: timeoutMs.default(30_000),
      bodyTimeoutMs: timeoutMs.default(30_000),
    })
    .prefault({}),
  scriptTimeoutMs: z.number().int().min(1).max(10_000).default(100),
  /** SIGTERM/SIGINT: how long in-flight requests may take to finish before their connections are destroyed. */
  drainTimeoutMs: z.number().int().min(0).max(3_600_000).default(30_000),
  /**
   * Where the control plane (admin API, store, validation, compile) runs: `thread`, a worker thread
   * of its own, so that no admin write ever stalls traffic (the traffic thread only swaps in the
   * compiled snapshot); `inline`, on the traffic thread. With `workers`, the primary process runs
   * it and serves no traffic, so the setting does not apply.
   */
  controlPlane: z.enum(['thread', 'inline']).default('thread'),
  /**
   * The control-plane thread's nice value (Linux; 0 to 19): how much it yields the CPU to the
   * traffic thread when both want it. 0: equal shares.
   */
  controlPlaneNice: z.number().int().min(0).max(19).default(10),
  /**
   * Linux: the control-plane thread does long work (a large write) in slices of 0.25 ms and,
   * after each, gives the CPU back for 1 ms if the traffic thread is waiting for it
   * (src/threaded/pacer.ts). false: only the nice value applies.
   */
  controlPlanePacing: z.boolean().default(true),
  /**
   * Worker processes sharing the traffic port (node:cluster): a count, or "auto" for one per
   * available CPU. null: one process serves traffic and the admin API (no cluster).
   */
  workers: z
    .custom<number | 'auto'>((v) => v === 'auto' || (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1024), {
      error: 'must be a positive integer (at most 1024) or "auto"',
    })
    .nullable()
    .default(null),
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
      /** Access lines: none, denied and dry-run-denied requests only, or every request. */
      access: z.enum(['off', 'denied', 'all']).default('denied'),
      /** Fraction of allowed requests logged in `all` mode; denials are never sampled. */
      sampleRate: z.number().min(0).max(1).default(1),
    })
    .prefault({}),
  admin: z
    .strictObject({
      listen: listenSchema.default('127.0.0.1:9090'),
      tokens: z.array(adminTokenSchema).default([]),
      jwt: adminJwtSchema.nullable().default(null),
      /** Large enough for a 1,000,000-entry ipList. */
      bodyLimitBytes: z.number().int().min(1024).default(128 * 1024 * 1024),
    })
    .prefault({}),
  store: z
    .strictObject({
      /** The embedded file store. null: policies come from this file only and admin writes answer 503. */
      file: z.string().min(1).nullable().default(null),
      /** The PostgreSQL cluster store, shared by many nodes. Exclusive with `file`. */
      postgres: postgresStoreSchema.nullable().default(null),
    })
    .superRefine((st, ctx) => {
      if (st.file !== null && st.postgres !== null) ctx.addIssue({ code: 'custom', path: ['postgres'], message: 'store.file and store.postgres are mutually exclusive: configure one store' });
    })
    .prefault({}),
  projects: z.array(projectSchema).default([]),
});

export type GatewayConfig = z.output<typeof gatewayConfigSchema>;
export type PolicyBindingInput = z.output<typeof policyBindingSchema>;
