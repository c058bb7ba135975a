/**
 * Per-node apply status in the `nodes` table, and the truthful deploymentResults built from it.
 *
 * Every node writes the revision it enforces (the lowest among its worker processes), the hash of
 * what it enforces, and its last failure, right after each swap and on every heartbeat. last_seen
 * is the database's clock (now()), so a node with a wrong clock is still judged correctly, and
 * "unreachable" means: not seen within three of that node's own heartbeat intervals.
 */
import type { ApplyReport, DeploymentResult, NodeInfo } from '../store.js';
import type { Q } from './read-state.js';

/** A node not seen within this many of its heartbeats is unreachable. */
export const UNREACHABLE_HEARTBEATS = 3;

export interface NodeRow {
  readonly nodeId: string;
  readonly environment: string;
  readonly epoch: string | null;
  readonly revision: number;
  readonly snapshotHash: string;
  readonly failedRevision: number | null;
  readonly failedError: string | null;
  readonly heartbeatMs: number;
  readonly lastSeen: Date;
  /** now() - last_seen on the database clock. */
  readonly ageMs: number;
}

export interface StatusRecord {
  readonly nodeId: string;
  readonly epoch: string;
  readonly heartbeatMs: number;
  readonly report: ApplyReport;
  /** A random id of the writing process, and its report number (rising with every report it makes). */
  readonly proc: string;
  readonly seq: number;
}

/**
 * Reports are ordered per process: a status write stuck on a connection that was cut off (the
 * caller gave up on it, the database had not) can arrive after a newer one, and must then change
 * nothing. A report from another process (the node restarted) always applies.
 */
const UPSERT = (s: string): string => `insert into ${s}.nodes as n (node_id, environment, epoch, revision, snapshot_hash, failed_revision, failed_error, heartbeat_ms, last_seen, report_proc, report_seq)
  values ($1, $2, $3::uuid, $4, $5, $6, $7, $8, now(), $9::uuid, $10)
  on conflict (node_id) do update set environment = excluded.environment, epoch = excluded.epoch, revision = excluded.revision,
    snapshot_hash = excluded.snapshot_hash, failed_revision = excluded.failed_revision, failed_error = excluded.failed_error,
    heartbeat_ms = excluded.heartbeat_ms, last_seen = now(), report_proc = excluded.report_proc, report_seq = excluded.report_seq
  where n.report_proc is distinct from excluded.report_proc or n.report_seq < excluded.report_seq`;

function upsertParams(r: StatusRecord): (string | number | null)[] {
  return [r.nodeId, r.report.environment, r.epoch, r.report.revision, r.report.snapshotHash, r.report.failed?.revision ?? null, r.report.failed?.error ?? null, r.heartbeatMs, r.proc, r.seq];
}

export async function writeStatus(q: Q, s: string, r: StatusRecord): Promise<void> {
  await q.unsafe(UPSERT(s), upsertParams(r));
}

/**
 * One heartbeat, one round trip: the status row (when there is one to write), a notification this
 * node's own listener must hear (or it is dead), and the head, so a missed notification is noticed
 * within a heartbeat.
 */
export async function heartbeat(q: Q, s: string, r: StatusRecord | null, channel: string, payload: string): Promise<{ epoch: string; revision: number; writeId: string } | null> {
  const rows =
    r === null
      ? await q.unsafe(`select pg_notify($1, $2) as n, h.revision, h.epoch::text as epoch, h.write_id::text as write_id from (select 1) x left join ${s}.head h on true`, [channel, payload])
      : await q.unsafe(
          `with up as (${UPSERT(s)} returning 1) select (select count(*) from up) as c, pg_notify($11, $12) as n, h.revision, h.epoch::text as epoch, h.write_id::text as write_id from (select 1) x left join ${s}.head h on true`,
          [...upsertParams(r), channel, payload],
        );
  const h = rows[0];
  return h === undefined || h.revision === null ? null : { epoch: String(h.epoch), revision: Number(h.revision), writeId: String(h.write_id) };
}

export async function readNodes(q: Q, s: string, environments?: readonly string[]): Promise<NodeRow[]> {
  const where = environments === undefined ? '' : 'where environment in (select json_array_elements_text($1::text::json))';
  const rows = await q.unsafe(
    `select node_id, environment, epoch::text as epoch, revision, snapshot_hash, failed_revision, failed_error, heartbeat_ms, last_seen,
       (extract(epoch from (now() - last_seen)) * 1000)::float8 as age_ms
     from ${s}.nodes ${where} order by environment, node_id`,
    environments === undefined ? [] : [JSON.stringify(environments)],
  );
  return rows.map((r) => ({
    nodeId: String(r.node_id),
    environment: String(r.environment),
    epoch: r.epoch === null ? null : String(r.epoch),
    revision: Number(r.revision),
    snapshotHash: String(r.snapshot_hash),
    failedRevision: r.failed_revision === null ? null : Number(r.failed_revision),
    failedError: r.failed_error === null ? null : String(r.failed_error),
    heartbeatMs: Number(r.heartbeat_ms),
    lastSeen: r.last_seen as Date,
    ageMs: Number(r.age_ms),
  }));
}

export function isLive(n: NodeRow): boolean {
  return n.ageMs <= UNREACHABLE_HEARTBEATS * n.heartbeatMs;
}

export function nodeInfo(n: NodeRow): NodeInfo {
  return {
    nodeId: n.nodeId,
    environment: n.environment,
    revision: n.revision,
    snapshotHash: n.snapshotHash,
    lastSeen: n.lastSeen.toISOString(),
    state: isLive(n) ? 'live' : 'unreachable',
    failedRevision: n.failedRevision,
    failedError: n.failedError,
  };
}

export interface Verdict extends DeploymentResult {
  /** Nothing more to wait for: no live node is still pending (or one already failed). */
  readonly decided: boolean;
}

export interface Self {
  readonly nodeId: string;
  readonly environment: string;
  readonly outcome: { readonly success: boolean; readonly message: string };
}

/**
 * The result of deploying `revision` (of store `epoch`) to `env`, from its nodes' rows. This node
 * is judged by its own outcome (known before the call), not by its row.
 */
export function judge(env: string, revision: number, epoch: string, rows: readonly NodeRow[], self: Self, waitedMs: number): Verdict {
  const applied: string[] = [];
  const failed: string[] = [];
  const pending: string[] = [];
  const unreachable: string[] = [];
  const isSelfEnv = self.environment === env;
  if (isSelfEnv) (self.outcome.success ? applied : failed).push(self.outcome.success ? self.nodeId : `${self.nodeId}: ${self.outcome.message}`);
  for (const n of rows) {
    if (n.environment !== env || (isSelfEnv && n.nodeId === self.nodeId)) continue;
    if (!isLive(n)) {
      unreachable.push(`${n.nodeId} (last seen ${(n.ageMs / 1000).toFixed(1)} s ago)`);
      continue;
    }
    const sameStore = n.epoch === epoch;
    if (sameStore && n.revision >= revision) applied.push(n.nodeId);
    else if (sameStore && n.failedRevision !== null && n.failedRevision >= revision) failed.push(`${n.nodeId}: ${n.failedError ?? 'failed'}`);
    else pending.push(`${n.nodeId} (enforces ${sameStore ? `revision ${n.revision}` : 'another store epoch'})`);
  }
  const parts: string[] = [];
  const also = (): void => {
    if (applied.length > 0 && (failed.length > 0 || pending.length > 0)) parts.push(`enforced on ${applied.join(', ')}`);
    if (pending.length > 0 && failed.length > 0) parts.push(`PENDING on ${pending.join(', ')}`);
    if (unreachable.length > 0) parts.push(`unreachable (not seen within ${UNREACHABLE_HEARTBEATS} heartbeats): ${unreachable.join(', ')}`);
  };
  if (applied.length + failed.length + pending.length === 0) {
    parts.push('no live gateway node');
    also();
    return { environmentName: env, success: false, message: parts.join('; '), decided: true };
  }
  if (failed.length > 0) {
    parts.push(`revision ${revision} FAILED on ${failed.join('; ')}`);
    also();
    return { environmentName: env, success: false, message: parts.join('; '), decided: true };
  }
  if (pending.length > 0) {
    parts.push(`revision ${revision} is not confirmed after ${Math.round(waitedMs)} ms: PENDING on ${pending.join(', ')}`);
    also();
    return { environmentName: env, success: false, message: parts.join('; '), decided: false };
  }
  parts.push(`Deployment successful: revision ${revision} is enforced on ${applied.join(', ')}`);
  also();
  return { environmentName: env, success: true, message: parts.join('; '), decided: true };
}
