import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** One registry per server instance, so several servers can run in one process (tests). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route'>;
  readonly polls: Counter<'result'>;
  readonly reports: Counter<'status' | 'outcome'>;
  readonly uploads: Counter<'result'>;
  readonly rolloutEvents: Counter<'event'>;
  readonly webhooks: Counter<'event' | 'result'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'clp_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'clp_http_request_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [this.registry],
    });
    this.polls = new Counter({
      name: 'clp_agent_polls_total',
      help: 'Agent polls by result (offer: something to apply or revert; idle: nothing)',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.reports = new Counter({
      name: 'clp_agent_reports_total',
      help: 'Agent reports by status and outcome (accepted or duplicate)',
      labelNames: ['status', 'outcome'],
      registers: [this.registry],
    });
    this.uploads = new Counter({
      name: 'clp_release_uploads_total',
      help: 'Release uploads by result',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.rolloutEvents = new Counter({
      name: 'clp_rollout_events_total',
      help: 'Rollout events decided by this process: halted, completed, failure_warning (half the threshold), silent (machines counted silent)',
      labelNames: ['event'],
      registers: [this.registry],
    });
    this.webhooks = new Counter({
      name: 'clp_webhook_deliveries_total',
      help: 'Webhook delivery attempts by event and result (delivered, retry, abandoned)',
      labelNames: ['event', 'result'],
      registers: [this.registry],
    });
  }
}
