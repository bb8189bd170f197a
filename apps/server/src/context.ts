import type { AdminRole, Database, DatabaseHandle, machines } from '@clp/db';
import type { Logger } from 'pino';
import type { MachineAuthCache } from './auth.ts';
import type { BlobStore } from './blob-store.ts';
import type { Clock } from './clock.ts';
import type { ServerConfig } from './config.ts';
import type { MachineSeen } from './machine-seen.ts';
import type { ServerMetrics } from './metrics.ts';
import type { OfferLog } from './offer-log.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { ReleaseInspector } from './release-inspector.ts';
import type { ReportWriter } from './report-writer.ts';
import type { ActiveRollouts } from './rollout-cache.ts';
import type { JudgedChange } from './rollout-judge.ts';
import type { WebhookSender } from './webhooks.ts';

export type MachineRow = typeof machines.$inferSelect;

/** What a request from an agent knows of its machine (the rest changes with each poll). */
export type AgentMachine = Pick<MachineRow, 'id' | 'tier' | 'tags'>;

/** Who is calling: an admin token or console user (with its role), or an enrolled machine. */
export type Principal =
  | {
      kind: 'admin';
      id: string;
      name: string;
      role: AdminRole;
      /** user: a named console account; token (or absent): an admin API token. */
      account?: 'user' | 'token';
    }
  | { kind: 'machine'; machine: AgentMachine }
  | { kind: 'anonymous' };

/** Everything a handler needs; built once per server. */
export interface AppContext {
  config: ServerConfig;
  database: DatabaseHandle;
  db: Database;
  blobs: BlobStore;
  clock: Clock;
  log: Logger;
  metrics: ServerMetrics;
  inspect: ReleaseInspector;
  rollouts: ActiveRollouts;
  /** Judges every offering rollout now (stages, completion, halts, silence, warnings, webhooks). */
  judge: () => Promise<JudgedChange[]>;
  /** Sends queued webhook deliveries in the background. */
  webhooks: WebhookSender;
  seen: MachineSeen;
  /** Which machines each rollout offered its release to, written in batches like `seen`. */
  offers: OfferLog;
  reportWriter: ReportWriter;
  /** Machine credentials looked up recently (polls are the hot path). */
  machineAuth: MachineAuthCache;
  limits: { enroll: RateLimiter; authFailures: RateLimiter };
}

/** The audit name of an admin principal. */
export function actorName(principal: Principal): string {
  if (principal.kind === 'admin') return `${principal.name} (${principal.role})`;
  if (principal.kind === 'machine') return `machine ${principal.machine.id}`;
  return 'anonymous';
}
