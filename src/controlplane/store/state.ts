/**
 * The persisted control-plane state: what the store holds and what every admin write changes.
 *
 * Deployments follow Apinizer: each API proxy has a working copy (`draft`) that admins edit, and a
 * frozen copy per environment it is deployed to. A node of environment E enforces the deployed
 * copies for E, so a change saved with `deploy: false` is kept but not enforced until the next
 * deploy (redeployRequired). IP groups are live: a group change reaches every deployment using it.
 */
import type { ApiProxyDef, IpGroupDef } from '../../policy/model.js';

export const STORE_FORMAT = 1;

export interface EnvironmentRecord {
  name: string;
  description?: string | undefined;
  createdAt: string;
}

/** An API proxy's definition without deployment information (environments is derived). */
export type ProxyDraft = Omit<ApiProxyDef, 'environments'>;

export interface DeploymentRecord {
  /** The store revision the deployment was made at. */
  revision: number;
  deployedAt: string;
  deployedBy: string;
  /** The proxy exactly as deployed. */
  proxy: ProxyDraft;
}

export interface HistoryRecord extends DeploymentRecord {
  environment: string;
  /** 'deploy' or 'rollback'. */
  kind: string;
}

/** Past deployments kept per proxy, for rollback. */
export const MAX_HISTORY = 20;

export interface ProxyRecord {
  draft: ProxyDraft;
  /**
   * The store revision of this proxy's last change (its policies included), so it never repeats;
   * the ETag. (Stores written before may hold a smaller per-proxy count: the next change moves on.)
   */
  version: number;
  /** Per environment name. */
  deployments: Record<string, DeploymentRecord>;
  /** Past deployments, newest last, bounded. Absent in stores written before it existed. */
  history?: HistoryRecord[];
}

export interface IpGroupRecord extends IpGroupDef {
  /** The store revision of this group's last change; the ETag (as ProxyRecord.version). */
  version: number;
}

export interface ProjectRecord {
  name: string;
  description?: string | undefined;
  createdAt: string;
  proxies: ProxyRecord[];
  ipGroups: IpGroupRecord[];
}

export interface AuditRecord {
  id: number;
  time: string;
  actor: string;
  action: string;
  project: string | null;
  proxy: string | null;
  target: string;
  before: unknown;
  after: unknown;
  revision: number;
}

export interface AdminAccessRecord {
  /** CIDRs, addresses, ranges or wildcards; empty means no restriction (Amani's rule). */
  ipList: string[];
  /** The store revision of the list's last change; the ETag (as ProxyRecord.version). */
  version: number;
}

export interface StoreData {
  format: typeof STORE_FORMAT;
  /** A UUID made when the store was created; a different epoch means a different (restored) store. */
  epoch: string;
  /** Incremented by exactly one on every committed write. */
  revision: number;
  environments: EnvironmentRecord[];
  projects: ProjectRecord[];
  audit: AuditRecord[];
  /** Who may reach the admin listener at all. Absent in stores written before it existed. */
  adminAccess?: AdminAccessRecord;
}
