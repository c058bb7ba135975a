/**
 * The declarative policy model: what admins write, in YAML or through the apiops API.
 *
 * The shapes follow the Apinizer "Allowed IP List Policy" document (operationMetadata + policy),
 * with ipgate's extensions marked as such. Nothing here is used per request: the compiler turns
 * these into a {@link Snapshot} (see snapshot.ts), and only the snapshot reaches the data plane.
 */

export const POLICY_TYPES = ['policy-white-ip', 'policy-black-ip'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

export const TARGET_SCOPES = ['ALL', 'ENDPOINT'] as const;
export type TargetScope = (typeof TARGET_SCOPES)[number];

export const TARGET_PIPELINES = ['REQUEST', 'RESPONSE', 'ERROR'] as const;
export type TargetPipeline = (typeof TARGET_PIPELINES)[number];

export const ENDPOINT_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'ALL'] as const;
export type EndpointMethod = (typeof ENDPOINT_METHODS)[number];

export const IP_VARIABLE_TYPES = ['HEADER', 'PARAMETER', 'BODY', 'CONTEXT', 'SCRIPT'] as const;
export type IpVariableType = (typeof IP_VARIABLE_TYPES)[number];

/** CONTEXT values that yield an address. Apinizer's other context values (REQUEST_URI, ...) are not IPs. */
export const IP_CONTEXT_VALUES = ['CLIENT_IP', 'REMOTE_ADDR'] as const;
export type IpContextValue = (typeof IP_CONTEXT_VALUES)[number];

export interface OperationMetadata {
  targetScope: TargetScope;
  targetPipeline: TargetPipeline;
  /** Path pattern relative to the proxy's basePath: /orders/{id}, /orders/**. Required for ENDPOINT. */
  targetEndpoint?: string | undefined;
  /** Required for ENDPOINT. GET also covers HEAD. */
  targetEndpointHTTPMethod?: EndpointMethod | undefined;
  deploy?: boolean | undefined;
  deployTargetEnvironmentNameList?: string[] | undefined;
  /** 1-based execution order inside its group; null or absent appends. */
  order?: number | null | undefined;
}

export interface TargetVariableForIP {
  type: IpVariableType;
  headerName?: string | undefined;
  paramName?: string | undefined;
  /** ipgate: dotted path into a JSON body, e.g. "client.ip". Required for BODY. */
  bodyPath?: string | undefined;
  contextValue?: IpContextValue | undefined;
  /** ipgate: JavaScript expression over { headers, query, remoteAddress }. Required for SCRIPT. */
  script?: string | undefined;
  /**
   * ipgate: believe HEADER/PARAMETER/BODY/SCRIPT even when the socket peer is not a trusted proxy.
   * Off by default because any client could then choose its own address.
   */
  trustUntrustedPeers?: boolean | undefined;
}

export interface PolicyDef {
  type: PolicyType;
  /** Unique (case-insensitively) within its API proxy. */
  name: string;
  description?: string | undefined;
  active?: boolean | undefined;
  /** ipgate: false makes a dry run: decisions are logged and counted but never block. Default true. */
  enforce?: boolean | undefined;
  targetVariableForIP?: TargetVariableForIP | null | undefined;
  ipList?: string[] | undefined;
  /** References to project IP groups, by id or name. */
  ipGroupIdList?: string[] | undefined;
  /** ipgate: rejection status override (4xx/5xx). Default 403. */
  rejectStatusCode?: number | undefined;
  /** ipgate: rejection message override; the client IP is appended. */
  rejectMessage?: string | undefined;
}

export interface PolicyBinding {
  operationMetadata: OperationMetadata;
  policy: PolicyDef;
}

export interface UpstreamDef {
  url: string;
  connectTimeoutMs?: number | undefined;
  headersTimeoutMs?: number | undefined;
  bodyTimeoutMs?: number | undefined;
}

export interface ApiProxyDef {
  name: string;
  description?: string | undefined;
  /** Path prefix, matched on a segment boundary: /echo matches /echo and /echo/x, not /echoes. */
  basePath: string;
  /** Optional Host names (exact, or *.example.com); empty means any host. */
  hosts?: string[] | undefined;
  upstream: UpstreamDef;
  /** Environments this proxy is deployed to. A node only serves proxies deployed to its own. */
  environments: string[];
  policies: PolicyBinding[];
}

export const IP_ENTRY_ACTIONS = ['allow', 'deny'] as const;
export type IpEntryAction = (typeof IP_ENTRY_ACTIONS)[number];

export interface IpGroupEntry {
  /** Address, CIDR, range or wildcard, as in ipList. */
  ip: string;
  /** allow (default) or deny. In a white-ip policy deny wins over allow; in a black-ip policy allow is an exception. */
  action?: IpEntryAction | undefined;
  description?: string | undefined;
  metadata?: string | undefined;
  createdBy?: string | undefined;
  createdAt?: string | undefined;
  /** RFC 3339. The entry stops matching at this instant. */
  expiresAt?: string | undefined;
}

export interface IpGroupDef {
  id: string;
  name: string;
  description?: string | undefined;
  entries: IpGroupEntry[];
}

export interface ProjectDef {
  name: string;
  description?: string | undefined;
  apiProxies: ApiProxyDef[];
  ipGroups: IpGroupDef[];
}

/** The whole declarative state a snapshot is compiled from. */
export interface PolicyState {
  revision: number;
  projects: ProjectDef[];
}
