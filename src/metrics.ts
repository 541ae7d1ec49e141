// Prometheus metrics (prom-client), one registry per server instance so several servers can share a process
// (tests) without mixing figures. Names follow Prometheus conventions: *_total counters, *_seconds histograms.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Label children cached by their label values: prom-client's labels() hashes the values on every call, which
 * on the per-request path costs more than the increment itself.
 */
export function childCache<T>(make: (...values: string[]) => T): (...values: string[]) => T {
  const cache = new Map<string, T>();
  return (...values: string[]) => {
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    let child = cache.get(key);
    if (child === undefined) {
      child = make(...values);
      if (cache.size < 1000) cache.set(key, child);
    }
    return child;
  };
}

export class Metrics {
  readonly registry = new Registry();
  readonly sipRequests: Counter<'method'>;
  readonly sipResponses: Counter<'method' | 'status'>;
  readonly sipBadMessages: Counter<'reason'>;
  readonly sipRetransmissions: Counter;
  readonly sipRequestDuration: Histogram<'method'>;
  readonly registrations: Counter<'outcome'>;
  readonly bindingChanges: Counter<'event'>;
  readonly authFailures: Counter<'reason'>;

  constructor(gauges: { activeBindings: () => number; aors: () => number; tcpConnections: () => number; serverTransactions: () => number }) {
    const registers = [this.registry];
    this.sipRequests = new Counter({ name: 'switchboard_sip_requests_total', help: 'SIP requests received (new transactions)', labelNames: ['method'], registers });
    this.sipResponses = new Counter({ name: 'switchboard_sip_responses_total', help: 'SIP responses sent', labelNames: ['method', 'status'], registers });
    this.sipBadMessages = new Counter({ name: 'switchboard_sip_bad_messages_total', help: 'SIP messages rejected or dropped as malformed', labelNames: ['reason'], registers });
    this.sipRetransmissions = new Counter({ name: 'switchboard_sip_retransmissions_total', help: 'Request retransmissions absorbed by server transactions', registers });
    this.sipRequestDuration = new Histogram({
      name: 'switchboard_sip_request_duration_seconds',
      help: 'Time from a request arriving to its final response leaving',
      labelNames: ['method'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.registrations = new Counter({ name: 'switchboard_registrations_total', help: 'REGISTER requests by outcome', labelNames: ['outcome'], registers });
    this.bindingChanges = new Counter({ name: 'switchboard_binding_changes_total', help: 'Binding changes by kind', labelNames: ['event'], registers });
    this.authFailures = new Counter({ name: 'switchboard_auth_failures_total', help: 'Failed SIP authentications by reason', labelNames: ['reason'], registers });
    new Gauge({ name: 'switchboard_bindings_active', help: 'Live bindings in the location service', registers, collect() { this.set(gauges.activeBindings()); } });
    new Gauge({ name: 'switchboard_aors_registered', help: 'Addresses of record with at least one binding', registers, collect() { this.set(gauges.aors()); } });
    new Gauge({ name: 'switchboard_tcp_connections', help: 'Open SIP TCP connections', registers, collect() { this.set(gauges.tcpConnections()); } });
    new Gauge({ name: 'switchboard_sip_server_transactions', help: 'Server transactions held (absorbing retransmissions)', registers, collect() { this.set(gauges.serverTransactions()); } });
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_' });
  }
}
