/**
 * The admin API's OpenAPI 3.1 document, built from the live route list.
 *
 * Every route must have an entry in OPERATIONS (keyed "METHOD path", the path exactly as the
 * route declares it): buildOpenApi throws on a route without one, so a new route cannot ship
 * undocumented. Request bodies are JSON Schema 2020-12 generated from the zod schemas the
 * handlers validate with (z.toJSONSchema, input side), imported from the route files themselves.
 * Cross-field rules (superRefine) have no JSON Schema form and are described in prose.
 */
import { z } from 'zod';
import { basePathSchema, environmentNamesSchema, hostSchema, ipEntrySchema, NAME_RE, policyBindingSchema, upstreamSchema } from '../../config/schema.js';
import { importBodySchema } from '../store/portable.js';
import { adminAccessBodySchema } from './routes-access.js';
import { explainSchema } from './routes-explain.js';
import { entriesBodySchema, removeBodySchema } from './routes-ipgroups.js';
import { deleteBodySchema } from './routes-policies.js';
import { describedSchema, proxyBodySchema } from './routes-resources.js';
import { ADMIN_ERRORS, type AdminErrorCode } from './errors.js';
import type { Route } from './router.js';

type JsonSchema = Record<string, unknown>;

export const OPENAPI_PATH = '/apiops/openapi.json';

// ---- request body schemas --------------------------------------------------------------------

/** Mirrors of route-local schemas (routes-*.ts), built from the same exported parts. */
const IP_ENTRY_TEXT =
  'An IP rule: an address ("192.0.2.1", "2001:db8::1"), a CIDR block with no host bits set ("10.0.0.0/8"), a range ("192.0.2.0-192.0.2.29", "10.3.10.4-18") or an IPv4 wildcard ("10.3.*.*"). Zone ids are refused.';

/** Prose for the building blocks whose rules are code (superRefine/refine), matched by identity. */
const ANNOTATIONS = new Map<unknown, string>([
  [ipEntrySchema, IP_ENTRY_TEXT],
  [upstreamSchema.shape.url, 'An absolute http or https URL with no query, fragment or credentials.'],
  [basePathSchema, 'Starts with "/", no empty, "." or ".." segments, no trailing slash.'],
  [hostSchema, 'A host name, optionally starting with "*.".'],
  [environmentNamesSchema, 'Environment names, each at most once: names are case-insensitive, so "production" and "PRODUCTION" are a repeat.'],
]);

const BODY_SCHEMAS = {
  Described: { schema: describedSchema, description: 'An optional description. The body may be empty.' },
  ApiProxyBody: {
    schema: proxyBodySchema,
    description: 'An API proxy\'s routing: basePath, optional host names and the upstream. The name comes from the URL; policies are managed under .../policies/.',
  },
  PolicyBinding: {
    schema: policyBindingSchema,
    description:
      'A policy and where it runs. policy.name may be omitted (the URL names the policy) and must equal it if given. Rules not expressed in this schema: policy.ipList or policy.ipGroupIdList must be non-empty; targetScope ENDPOINT requires targetEndpoint and targetEndpointHTTPMethod; targetVariableForIP of type HEADER/PARAMETER/BODY/CONTEXT/SCRIPT requires headerName/paramName/bodyPath/contextValue/script respectively, and a script must compile; description is at most 1024 bytes. operationMetadata.order is the 1-based position within the pipeline (null or absent: last, or unchanged on update); deploy (default true) deploys to deployTargetEnvironmentNameList, or to every environment the proxy is deployed to.',
  },
  PolicyDeleteOptions: {
    schema: deleteBodySchema,
    description:
      'operationMetadata.targetScope and targetPipeline are required and must be the policy\'s own (400 otherwise, naming the field). operationMetadata.deploy (default false) deploys the change to deployTargetEnvironmentNameList, or to every environment the proxy is deployed to.',
  },
  IpGroupEntries: {
    schema: entriesBodySchema,
    description: 'IP group entries. createdBy and createdAt are set by the server and must be absent. ip is stored in canonical form (a single address as a /32 or /128). Duplicates (same IP and action) are ignored. description is at most 255 bytes, metadata 4096; expiresAt is an RFC 3339 timestamp.',
  },
  IpGroupEntryRemoval: { schema: removeBodySchema, description: 'The IP texts of the entries to remove (compared in canonical form).' },
  AdminAccessList: { schema: adminAccessBodySchema, description: 'The admin listener\'s IP allowlist; empty means unrestricted.' },
  IpCheckRequest: {
    schema: explainSchema,
    description:
      'A request to evaluate: give ip (a direct client), or remoteAddress with optional headers (forwarded requests). path is below the proxy\'s basePath and may carry a query. environment defaults to this node\'s.',
  },
  ExportDocument: {
    schema: importBodySchema,
    description:
      'The whole state in the config file\'s projects shape; each API proxy is deployed to the environments it lists. GET /apiops/export/ answers it with success and revision, which an import accepts and ignores, so an export imports as it is. environments are valid names, each once in any case.',
  },

} satisfies Record<string, { schema: z.ZodType; description: string }>;

type BodyName = keyof typeof BODY_SCHEMAS;

function bodyJsonSchema(name: string, schema: z.ZodType, description: string): JsonSchema {
  const out = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      const text = ANNOTATIONS.get(ctx.zodSchema);
      if (text !== undefined && ctx.jsonSchema.description === undefined) ctx.jsonSchema.description = text;
    },
  }) as JsonSchema;
  // OpenAPI 3.1's default dialect is JSON Schema 2020-12: the $schema keyword adds nothing here.
  const { $schema: _s, ...rest } = out;
  return { title: name, ...rest, description };
}

// ---- response schemas (hand-written: handlers build replies from store records) ----------------

const str = { type: 'string' };
const strOrNull = { type: ['string', 'null'] };
const int = { type: 'integer' };
const bool = { type: 'boolean' };
const time = { type: 'string', format: 'date-time' };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const arr = (items: unknown) => ({ type: 'array', items });
const obj = (properties: Record<string, unknown>, required: readonly string[] = Object.keys(properties)): JsonSchema => ({ type: 'object', properties, required: [...required] });

/** `{ success: true, ...properties }`. */
function ok(properties: Record<string, unknown> = {}, required: readonly string[] = Object.keys(properties)): JsonSchema {
  return obj({ success: { const: true }, ...properties }, ['success', ...required]);
}
const list = (item: unknown, more: Record<string, unknown> = {}) => ok({ resultList: arr(item), resultCount: int, ...more });
const deployment = (more: Record<string, unknown> = {}) => ok({ deploymentResult: ref('DeploymentResult'), ...more });

const RESPONSE_SCHEMAS: Record<string, JsonSchema> = {
  DeploymentResult: {
    ...obj({
      success: { ...bool, description: 'true when every environment deployed to enforces the change.' },
      deploymentResults: arr(obj({ environmentName: str, success: bool, message: str })),
    }),
    description: 'Per environment the write deployed to. This node\'s environment is enforced before the reply; other environments report "no live gateway node".',
  },
  ApiProxy: obj(
    {
      name: str,
      description: str,
      basePath: str,
      hosts: arr(str),
      upstream: { type: 'object' },
      policyCount: int,
      deployedEnvironments: arr(str),
      redeployRequired: { ...bool, description: 'Some deployment differs from the working copy.' },
    },
    ['name', 'basePath', 'upstream', 'policyCount', 'deployedEnvironments', 'redeployRequired'],
  ),
  PolicyView: {
    type: 'object',
    description: 'The policy fields (name included), targetVariableForIP (null when unset), and operationMetadata with its computed 1-based order.',
    properties: { type: str, name: str, targetVariableForIP: { type: ['object', 'null'] }, operationMetadata: { type: 'object', properties: { order: int } } },
    required: ['type', 'name', 'operationMetadata'],
  },
  IpGroup: obj({ id: str, name: str, description: strOrNull, entryCount: int, version: int }),
  IpGroupEntry: obj({ ip: str, action: { enum: ['allow', 'deny'] }, description: str, metadata: str, createdBy: str, createdAt: time, expiresAt: time }, ['ip']),
};

// ---- the table ---------------------------------------------------------------------------------

type Tag = 'Projects' | 'Environments' | 'API proxies' | 'Deployments' | 'Policies' | 'IP groups' | 'IP check' | 'Admin access' | 'Audit' | 'Nodes' | 'Export and import' | 'Meta';

const TAGS: Record<Tag, string> = {
  Projects: 'Projects group API proxies and IP groups.',
  Environments: 'Environments a proxy can be deployed to; each gateway node serves one.',
  'API proxies': 'API proxies: a base path (and optional hosts) in front of an upstream. Writes change the working copy.',
  Deployments: 'Deploying an API proxy\'s working copy to an environment, its history and rollback.',
  Policies: 'IP allow/deny policies of an API proxy (Apinizer apiops shapes).',
  'IP groups': 'Project IP groups referenced by policies; entry writes are live without a deploy.',
  'IP check': 'Explain what the enforced policies would do with a given request.',
  'Admin access': 'The admin listener\'s own IP allowlist.',
  Audit: 'Every admin write.',
  Nodes: 'Gateway nodes and what each enforces.',
  'Export and import': 'The whole state as one document.',
  Meta: 'This document.',
};

type QueryName = 'limit' | 'cursor' | 'force' | 'auditProject' | 'auditProxy';

interface OperationDoc {
  readonly operationId: string;
  readonly tag: Tag;
  readonly summary: string;
  readonly description?: string;
  /** A body schema of BODY_SCHEMAS, and whether an empty body is refused. */
  readonly body?: { readonly schema: BodyName; readonly required: boolean };
  readonly status?: 200 | 201;
  readonly response: JsonSchema;
  /** The success reply carries an ETag. */
  readonly etag?: boolean;
  /** The route honours If-Match (412 on a stale tag). */
  readonly ifMatch?: boolean;
  readonly query?: readonly QueryName[];
  /** Error codes beyond those derived from the route's shape (e.g. CONFLICT). */
  readonly errors?: readonly AdminErrorCode[];
  /** False for routes that do not read the store (no 503). */
  readonly store?: boolean;
}

const P = '/apiops/projects/:project/';
const A = `${P}apiProxies/:proxy/`;
const POL = `${A}policies/`;
const G = `${P}ipGroups/:group/`;
const LOCKOUT = 'Refused with 409 if the change would lock the caller out of an API proxy fronting this admin API, unless ?force=true.';

/** Every admin route, keyed `${method} ${path}` with the path exactly as the route declares it. */
export const OPERATIONS: Readonly<Record<string, OperationDoc>> = {
  // ---- projects ----
  'GET /apiops/projects/': {
    operationId: 'listProjects',
    tag: 'Projects',
    summary: 'List projects',
    response: list(obj({ name: str, description: str, createdAt: time, apiProxyCount: int, ipGroupCount: int }, ['name', 'createdAt', 'apiProxyCount', 'ipGroupCount'])),
  },
  [`GET ${P}`]: {
    operationId: 'getProject',
    tag: 'Projects',
    summary: 'Get a project',
    response: ok({ project: obj({ name: str, description: str, createdAt: time, apiProxies: arr(str) }, ['name', 'createdAt', 'apiProxies']) }),
  },
  [`POST ${P}`]: {
    operationId: 'createProject',
    tag: 'Projects',
    summary: 'Create a project',
    description: `Names are unique case-insensitively (409 otherwise). ${LOCKOUT}`,
    body: { schema: 'Described', required: false },
    status: 201,
    response: ok(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`DELETE ${P}`]: {
    operationId: 'deleteProject',
    tag: 'Projects',
    summary: 'Delete a project',
    description: `409 while the project still has API proxies. ${LOCKOUT}`,
    response: ok(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  // ---- environments ----
  'GET /apiops/environments/': {
    operationId: 'listEnvironments',
    tag: 'Environments',
    summary: 'List environments',
    response: list(obj({ name: str, description: str, createdAt: time, thisNode: { ...bool, description: 'This gateway node serves the environment.' } }, ['name', 'createdAt', 'thisNode'])),
  },
  'POST /apiops/environments/:env/': {
    operationId: 'createEnvironment',
    tag: 'Environments',
    summary: 'Create an environment',
    description: `Names are unique case-insensitively (409 otherwise). ${LOCKOUT}`,
    body: { schema: 'Described', required: false },
    status: 201,
    response: ok(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  // ---- API proxies ----
  [`GET ${P}apiProxies/`]: { operationId: 'listApiProxies', tag: 'API proxies', summary: 'List the API proxies of a project', response: list(ref('ApiProxy')) },
  [`GET ${A}`]: { operationId: 'getApiProxy', tag: 'API proxies', summary: 'Get an API proxy', response: ok({ apiProxy: ref('ApiProxy') }), etag: true },
  [`POST ${A}`]: {
    operationId: 'createApiProxy',
    tag: 'API proxies',
    summary: 'Create an API proxy',
    description: `Creates the working copy, with no policies and not deployed. ${LOCKOUT}`,
    body: { schema: 'ApiProxyBody', required: true },
    status: 201,
    response: ok(),
    etag: true,
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`PUT ${A}`]: {
    operationId: 'replaceApiProxy',
    tag: 'API proxies',
    summary: 'Replace an API proxy\'s routing',
    description: `Replaces basePath, hosts, upstream and description of the working copy; policies are kept. Enforced at the next deploy. ${LOCKOUT}`,
    body: { schema: 'ApiProxyBody', required: true },
    response: ok(),
    etag: true,
    ifMatch: true,
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`DELETE ${A}`]: {
    operationId: 'deleteApiProxy',
    tag: 'API proxies',
    summary: 'Delete an API proxy',
    description: `Also removes it from every environment it is deployed to. ${LOCKOUT}`,
    response: deployment(),
    ifMatch: true,
    query: ['force'],
    errors: ['CONFLICT'],
  },
  // ---- deployments ----
  [`POST ${A}environments/:env/`]: {
    operationId: 'deployApiProxy',
    tag: 'Deployments',
    summary: 'Deploy an API proxy to an environment',
    description: `Deploys the working copy. ${LOCKOUT}`,
    response: deployment(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`DELETE ${A}environments/:env/`]: {
    operationId: 'undeployApiProxy',
    tag: 'Deployments',
    summary: 'Undeploy an API proxy from an environment',
    description: `404 if it is not deployed there. ${LOCKOUT}`,
    response: deployment(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`GET ${A}deploy-histories/`]: {
    operationId: 'listDeployHistory',
    tag: 'Deployments',
    summary: 'List an API proxy\'s deployments, newest first',
    response: list(obj({ revision: int, environmentName: str, kind: { type: 'string', description: '"deploy" or "rollback"' }, deployedAt: time, deployedBy: str, policyCount: int })),
  },
  [`POST ${A}deploy-histories/:revision/rollback/`]: {
    operationId: 'rollbackApiProxy',
    tag: 'Deployments',
    summary: 'Roll an API proxy back to a deployed revision',
    description: `The working copy becomes the copy deployed at that revision and is redeployed to the environments it was deployed to then. ${LOCKOUT}`,
    response: deployment(),
    etag: true,
    ifMatch: true,
    query: ['force'],
    errors: ['CONFLICT'],
  },
  [`GET ${A}deploy-status/`]: {
    operationId: 'getDeployStatus',
    tag: 'Deployments',
    summary: 'Where an API proxy is deployed, and whether the working copy differs',
    response: ok({
      revision: { ...int, description: 'The store revision.' },
      deployedEnvironments: arr(obj({ environmentName: str, revision: int, deployedAt: time, deployedBy: str, redeployRequired: bool })),
      redeployRequired: bool,
    }),
  },
  // ---- policies ----
  [`GET ${POL}`]: {
    operationId: 'listPolicies',
    tag: 'Policies',
    summary: 'List an API proxy\'s policies by pipeline',
    response: list(obj({ apiProxy: obj({ name: str, requestPolicyList: arr(ref('PolicyView')), responsePolicyList: arr(ref('PolicyView')), errorPolicyList: arr(ref('PolicyView')) }) })),
    etag: true,
  },
  [`GET ${POL}:policy/`]: { operationId: 'getPolicy', tag: 'Policies', summary: 'Get a policy', response: ok({ policy: ref('PolicyView') }), etag: true },
  [`POST ${POL}:policy/`]: {
    operationId: 'addPolicy',
    tag: 'Policies',
    summary: 'Add a policy',
    description: `Names are unique per API proxy, case-insensitively (409 otherwise). Deploys unless operationMetadata.deploy is false. ${LOCKOUT}`,
    body: { schema: 'PolicyBinding', required: true },
    response: deployment(),
    etag: true,
    ifMatch: true,
    errors: ['CONFLICT'],
  },
  [`PUT ${POL}:policy/`]: {
    operationId: 'updatePolicy',
    tag: 'Policies',
    summary: 'Update a policy',
    description: `The policy type may not change. Deploys unless operationMetadata.deploy is false. ${LOCKOUT}`,
    body: { schema: 'PolicyBinding', required: true },
    response: deployment(),
    etag: true,
    ifMatch: true,
  },
  [`DELETE ${POL}:policy/`]: {
    operationId: 'deletePolicy',
    tag: 'Policies',
    summary: 'Delete a policy',
    description: `Does not deploy unless operationMetadata.deploy is true. ${LOCKOUT}`,
    body: { schema: 'PolicyDeleteOptions', required: true },
    response: deployment(),
    etag: true,
    ifMatch: true,
  },
  // ---- IP groups ----
  [`GET ${P}ipGroups/`]: {
    operationId: 'listIpGroups',
    tag: 'IP groups',
    summary: 'List a project\'s IP groups',
    description: 'Each with the policies referencing it (working copies and deployments).',
    response: list({ allOf: [ref('IpGroup'), obj({ referencedBy: arr(obj({ apiProxy: str, policy: str })) })] }),
  },
  [`GET ${G}`]: {
    operationId: 'getIpGroup',
    tag: 'IP groups',
    summary: 'Get an IP group',
    description: 'The group is addressed by id, or by name case-insensitively.',
    response: ok({ ipGroup: ref('IpGroup') }),
    etag: true,
  },
  [`POST ${G}`]: {
    operationId: 'createIpGroup',
    tag: 'IP groups',
    summary: 'Create an empty IP group',
    description: 'Ids and names share one namespace, case-insensitively (409 on a clash). Replies with the new id.',
    body: { schema: 'Described', required: false },
    status: 201,
    response: ok({ id: str }),
    etag: true,
    errors: ['CONFLICT'],
  },
  [`DELETE ${G}`]: {
    operationId: 'deleteIpGroup',
    tag: 'IP groups',
    summary: 'Delete an IP group',
    description: '409 while any policy (working copy or deployment) references it.',
    response: ok(),
    ifMatch: true,
    errors: ['CONFLICT'],
  },
  [`GET ${G}ips/`]: {
    operationId: 'listIpGroupEntries',
    tag: 'IP groups',
    summary: 'List an IP group\'s entries',
    response: ok({ entries: arr(ref('IpGroupEntry')), next_page_uri: { ...strOrNull, description: 'The next page (null on the last).' } }),
    etag: true,
    query: ['limit', 'cursor'],
  },
  [`POST ${G}ips/`]: {
    operationId: 'addIpGroupEntries',
    tag: 'IP groups',
    summary: 'Add entries to an IP group',
    description: `Live: enforced without a deploy wherever a deployed policy references the group. ${LOCKOUT}`,
    body: { schema: 'IpGroupEntries', required: true },
    response: deployment({ added: int, ignored: int }),
    etag: true,
    ifMatch: true,
  },
  [`PUT ${G}ips/`]: {
    operationId: 'replaceIpGroupEntries',
    tag: 'IP groups',
    summary: 'Replace an IP group\'s entries',
    description: `Live: enforced without a deploy wherever a deployed policy references the group. ${LOCKOUT}`,
    body: { schema: 'IpGroupEntries', required: true },
    response: deployment({ entryCount: int, ignored: int }),
    etag: true,
    ifMatch: true,
  },
  [`DELETE ${G}ips/`]: {
    operationId: 'removeIpGroupEntries',
    tag: 'IP groups',
    summary: 'Remove entries from an IP group',
    description: `Live: enforced without a deploy wherever a deployed policy references the group. ${LOCKOUT}`,
    body: { schema: 'IpGroupEntryRemoval', required: true },
    response: deployment({ removed: int, ignored: int }),
    etag: true,
    ifMatch: true,
  },
  // ---- IP check ----
  [`POST ${A}ip-check/`]: {
    operationId: 'checkIp',
    tag: 'IP check',
    summary: 'Would this request be let through, and why?',
    description: 'Runs the compiled policies and client-IP resolution live traffic uses, for this node\'s environment or another one. Read-only: viewers may call it. 404 if the proxy is not deployed to the environment; 409 if that environment\'s state does not compile.',
    body: { schema: 'IpCheckRequest', required: true },
    response: ok({
      environment: str,
      revision: int,
      decision: { enum: ['allowed', 'denied'] },
      faultCode: strOrNull,
      decidedBy: strOrNull,
      clientIp: strOrNull,
      ipSource: str,
      policies: arr({ type: 'object', description: 'One evaluated policy: pipeline, policy, scope, result, faultCode, clientIp, ipSource, matchedEntry, dryRun.' }),
    }),
    errors: ['CONFLICT'],
  },
  // ---- admin access ----
  'GET /apiops/admin-access/': {
    operationId: 'getAdminAccess',
    tag: 'Admin access',
    summary: 'Get the admin IP allowlist',
    response: ok({ ipList: arr(str), restricted: bool }),
    etag: true,
  },
  'PUT /apiops/admin-access/': {
    operationId: 'replaceAdminAccess',
    tag: 'Admin access',
    summary: 'Replace the admin IP allowlist',
    description: 'Refused with 409 if the list excludes the caller\'s own address, unless ?force=true.',
    body: { schema: 'AdminAccessList', required: true },
    response: ok({ ipList: arr(str), restricted: bool }),
    etag: true,
    ifMatch: true,
    query: ['force'],
    errors: ['CONFLICT'],
  },
  // ---- audit ----
  'GET /apiops/audit/': {
    operationId: 'listAudit',
    tag: 'Audit',
    summary: 'List admin writes, newest first',
    response: list(
      obj({ id: int, actor: str, action: str, target: str, project: strOrNull, proxy: strOrNull, before: {}, after: {} }, ['id', 'actor', 'action', 'target']),
      { next_page_uri: { ...strOrNull, description: 'The next page (null on the last).' } },
    ),
    query: ['limit', 'cursor', 'auditProject', 'auditProxy'],
  },
  // ---- nodes ----
  'GET /apiops/nodes/': {
    operationId: 'listNodes',
    tag: 'Nodes',
    summary: 'List gateway nodes and the revision each enforces',
    description: 'With the file store, the one node that owns the store file. state is live, or unreachable when a node has not been seen within three heartbeats.',
    response: list(
      obj({
        nodeId: str,
        environment: str,
        revision: int,
        snapshotHash: str,
        lastSeen: str,
        state: { enum: ['live', 'unreachable'] },
        failedRevision: { type: ['integer', 'null'] },
        failedError: strOrNull,
      }),
    ),
  },
  // ---- export and import ----
  'GET /apiops/export/': {
    operationId: 'exportState',
    tag: 'Export and import',
    summary: 'Export the whole state',
    description: 'A valid config `projects:` document: each API proxy as its working copy, with the environments it is deployed to.',
    response: ok({ revision: int, environments: arr(str), projects: arr({ type: 'object' }) }),
  },
  'PUT /apiops/import/': {
    operationId: 'importState',
    tag: 'Export and import',
    summary: 'Replace the whole state',
    description: `One write: validated, compiled for every environment it deploys to, audited, and refused whole if anything is wrong. ${LOCKOUT}`,
    body: { schema: 'ExportDocument', required: true },
    response: deployment(),
    query: ['force'],
    errors: ['CONFLICT'],
  },
  // ---- meta ----
  [`GET ${OPENAPI_PATH}`]: {
    operationId: 'getOpenApi',
    tag: 'Meta',
    summary: 'This OpenAPI document',
    response: { type: 'object', required: ['openapi', 'info', 'paths'] },
    store: false,
  },
};

// ---- parameters and responses ------------------------------------------------------------------

const PATH_PARAMS: Record<string, { description: string; schema?: JsonSchema }> = {
  project: { description: 'Project name (case-insensitive).' },
  proxy: { description: 'API proxy name (case-insensitive).' },
  env: { description: 'Environment name (case-insensitive).' },
  policy: { description: 'Policy name, unique per API proxy (case-insensitive).' },
  group: { description: 'IP group id, or its name (case-insensitive).' },
  revision: { description: 'A store revision listed by deploy-histories.', schema: { type: 'integer', minimum: 1 } },
};

const QUERY_PARAMS: Record<QueryName, JsonSchema> = {
  limit: { name: 'limit', in: 'query', description: 'Page size.', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
  cursor: { name: 'cursor', in: 'query', description: 'Opaque cursor from next_page_uri.', schema: str },
  force: { name: 'force', in: 'query', description: 'true: accept a change that locks the caller out.', schema: { type: 'string', enum: ['true', 'false'] } },
  auditProject: { name: 'project', in: 'query', description: 'Only writes to this project (case-insensitive).', schema: str },
  auditProxy: { name: 'proxy', in: 'query', description: 'Only writes to this API proxy (case-insensitive).', schema: str },
};

const ERROR_TEXT: Record<AdminErrorCode, string> = {
  BAD_REQUEST: 'Invalid name, query, body, or a change that does not compile; details name the fields.',
  UNAUTHORIZED: 'Missing, invalid or expired bearer credential, or no admin credentials configured.',
  FORBIDDEN: 'The caller\'s address is not in the admin access list, or the role may not write.',
  NOT_FOUND: 'No such resource.',
  METHOD_NOT_ALLOWED: 'The path exists but not with this method; the Allow header lists its methods.',
  CONFLICT: 'The change conflicts with the current state (see the operation\'s description).',
  PRECONDITION_FAILED: 'If-Match does not match the current ETag.',
  PAYLOAD_TOO_LARGE: 'The body exceeds admin.bodyLimitBytes; the connection is closed.',
  UNSUPPORTED_MEDIA_TYPE: 'The body is not application/json.',
  INTERNAL_ERROR: 'Unexpected server error.',
  SERVICE_UNAVAILABLE: 'No store is configured (store.file or IPGATE_STORE).',
};

function errorResponses(): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const code of Object.keys(ADMIN_ERRORS) as AdminErrorCode[]) {
    out[code] = {
      description: ERROR_TEXT[code],
      ...(code === 'UNAUTHORIZED' ? { headers: { 'WWW-Authenticate': { description: 'Bearer', schema: str } } } : {}),
      content: { 'application/json': { schema: ref('Error') } },
    };
  }
  return out;
}

function routeKey(r: Pick<Route, 'method' | 'path'>): string {
  return `${r.method} ${r.path}`;
}

function operation(route: Route, doc: OperationDoc): JsonSchema {
  const params = route.path
    .split('/')
    .filter((s) => s.startsWith(':'))
    .map((s) => s.slice(1));
  const admin = route.write ?? route.method !== 'GET';
  const parameters: unknown[] = params.map((name) => {
    const p = PATH_PARAMS[name];
    return {
      name,
      in: 'path',
      required: true,
      description: p?.description ?? `${name} name.`,
      schema: p?.schema ?? { type: 'string', pattern: NAME_RE.source },
    };
  });
  for (const q of doc.query ?? []) parameters.push(QUERY_PARAMS[q]);
  if (doc.ifMatch === true) parameters.push({ $ref: '#/components/parameters/IfMatch' });

  const codes = new Set<AdminErrorCode>(['UNAUTHORIZED', 'FORBIDDEN']);
  if (params.length > 0 || doc.body !== undefined || (doc.query?.length ?? 0) > 0 || admin) codes.add('BAD_REQUEST');
  if (params.length > 0) codes.add('NOT_FOUND');
  if (doc.ifMatch === true) codes.add('PRECONDITION_FAILED');
  if (doc.body !== undefined) {
    codes.add('PAYLOAD_TOO_LARGE');
    codes.add('UNSUPPORTED_MEDIA_TYPE');
  }
  for (const c of doc.errors ?? []) codes.add(c);
  codes.add('INTERNAL_ERROR');
  if (doc.store !== false) codes.add('SERVICE_UNAVAILABLE');

  const status = doc.status ?? 200;
  const responses: Record<string, unknown> = {
    [String(status)]: {
      description: status === 201 ? 'Created.' : 'OK.',
      ...(doc.etag === true ? { headers: { ETag: { $ref: '#/components/headers/ETag' } } } : {}),
      content: { 'application/json': { schema: doc.response } },
    },
  };
  for (const code of [...codes].sort((a, b) => ADMIN_ERRORS[a] - ADMIN_ERRORS[b])) responses[String(ADMIN_ERRORS[code])] = { $ref: `#/components/responses/${code}` };

  const role = admin ? 'Requires the admin role.' : 'Any authenticated role (viewer or admin).';
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    description: doc.description === undefined ? role : `${doc.description}\n\n${role}`,
    tags: [doc.tag],
    'x-ipgate-role': admin ? 'admin' : 'viewer',
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(doc.body !== undefined
      ? {
          requestBody: {
            required: doc.body.required,
            ...(doc.body.required ? {} : { description: 'May be empty.' }),
            content: { 'application/json': { schema: ref(doc.body.schema) } },
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document for `routes`. Throws on a route with no OPERATIONS entry, or a duplicate. */
export function buildOpenApi(routes: readonly Route[]): object {
  const paths: Record<string, Record<string, unknown>> = {};
  const seen = new Set<string>();
  const ids = new Set<string>();
  const bodies = new Set<BodyName>();
  for (const route of routes) {
    const key = routeKey(route);
    const doc = OPERATIONS[key];
    if (doc === undefined) throw new Error(`admin route ${key} is not documented: add it to OPERATIONS in src/controlplane/admin/openapi.ts`);
    if (seen.has(key)) throw new Error(`admin route ${key} is registered twice`);
    if (ids.has(doc.operationId)) throw new Error(`operationId ${doc.operationId} is used twice`);
    seen.add(key);
    ids.add(doc.operationId);
    if (doc.body !== undefined) bodies.add(doc.body.schema);
    const oaPath = route.path.replace(/:([^/]+)/g, '{$1}');
    (paths[oaPath] ??= {})[route.method.toLowerCase()] = operation(route, doc);
  }

  const schemas: Record<string, unknown> = {
    Error: {
      type: 'object',
      description: 'The one error envelope of the admin API.',
      properties: {
        success: { const: false },
        error: { type: 'string', enum: Object.keys(ADMIN_ERRORS) },
        error_description: str,
        details: arr({ type: 'object', properties: { path: { ...str, description: 'Field path, e.g. policy.ipList[3]; empty for the whole body.' }, message: str }, required: ['path', 'message'] }),
      },
      required: ['success', 'error', 'error_description', 'details'],
    },
    ...RESPONSE_SCHEMAS,
  };
  for (const name of [...bodies].sort()) {
    const b = BODY_SCHEMAS[name];
    schemas[name] = bodyJsonSchema(name, b.schema, b.description);
  }

  const used = new Set([...seen].map((k) => OPERATIONS[k]!.tag));
  return {
    openapi: '3.1.0',
    info: {
      title: 'ipgate apiops admin API',
      version: '0.1.0',
      description:
        'The admin REST API of the ipgate gateway. Every request needs `Authorization: Bearer <token>` (a static token or a JWT); viewers may read, admins may write. Paths end with "/". Errors use one envelope (Error). Versioned resources return an ETag; send it back in If-Match to refuse a concurrent overwrite (412). Callers outside the admin access list get 403 before credentials are checked.',
    },
    tags: (Object.keys(TAGS) as Tag[]).filter((t) => used.has(t)).map((name) => ({ name, description: TAGS[name] })),
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT or static token', description: 'A static admin token (configured by its SHA-256) or a JWT (HS256, RS256 or ES256) carrying a role claim.' },
      },
      schemas,
      responses: errorResponses(),
      parameters: {
        IfMatch: { name: 'If-Match', in: 'header', required: false, description: 'An ETag from a previous reply (or *), compared strongly (a weak W/"…" tag never matches): the write is refused with 412 if the resource changed since.', schema: str },
      },
      headers: {
        ETag: { description: 'The version of the resource, for If-Match.', schema: str },
      },
    },
  };
}
