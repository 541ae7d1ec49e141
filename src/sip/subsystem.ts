// The SIP stack as a subsystem (lifecycle.ts) in two parts. The stack itself (the endpoint with its transactions,
// the transports, the flow relay) comes before the services, which register their methods on the endpoint and send
// through it; it stops after them. Its listeners (`listening`) come after the services: no request arrives before
// every method has its handler and the state it needs is primed, and on stop they close first.
//
// It knows nothing of the services: they subscribe to its hooks (a connection closed; the moment before the
// transports close, while in-flight requests are done and connections still open).

import type { EventBus } from '../bus/event-bus.ts';
import { loadTlsFiles, tlsContextOptions } from '../certificates.ts';
import type { Config } from '../config.ts';
import { Hook, type Subsystem } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { SipEndpoint } from './endpoint.ts';
import { FlowRelay } from './flow-relay.ts';
import { TransportLayer } from './transport/layer.ts';
import { NetworkSet } from './transport/networks.ts';
import type { ListenerAddress } from './transport/types.ts';

export interface SipStackOptions {
  config: Config;
  /** This node's id (bindings and relayed requests name it). */
  node: string;
  /** Workers on one host share each port (SO_REUSEPORT). */
  reusePort: boolean;
  /** The bus the relay sends other nodes' requests over. */
  bus: EventBus;
  metrics: Metrics;
  /** Every host name and address the machine answers to (the network interfaces'), for isLocalHost. */
  interfaceAddresses: readonly string[];
  log: Logger;
}

export interface SipStack extends Subsystem {
  readonly endpoint: SipEndpoint;
  readonly transports: TransportLayer;
  /** Requests for a flow another node holds go through that node over the bus. */
  readonly relay: FlowRelay;
  /** Whether a host (name or address, IPv6 in brackets or not) is this server's own. */
  isLocalHost(host: string): boolean;
  /** A TCP, TLS or WebSocket connection closed (its id). */
  readonly connectionClosed: Hook<number>;
  /** On stop: requests no longer accepted, those in flight finished, connections still open. */
  readonly beforeClose: Hook<void>;
  /** The listening addresses (after `listening` started). */
  readonly listeners: ListenerAddress[];
  /** The listeners: to be added after every service. */
  readonly listening: Subsystem;
}

export function createSipStack(o: SipStackOptions): SipStack {
  const { config, metrics: m, log } = o;
  const endpoint = new SipEndpoint({
    logger: log.child({ component: 'sip' }),
    supported: ['path'],
    forceRport: config.sip.forceRport,
    serverHeader: config.sip.serverHeader,
  });
  const statusText: string[] = [];
  endpoint.setObserver({
    request: (method) => m.sipRequests.inc(method),
    response: (method, status, arrivedAt) => {
      const text = (statusText[status] ??= String(status));
      const seconds = (performance.now() - arrivedAt) / 1000;
      m.sipResponses.inc(method, text);
      m.sipRequestDuration.observe(method, seconds);
      if (method === 'REGISTER') m.sipRegisterDuration.observe(text, seconds);
    },
    badMessage: (reason) => m.sipBadMessages.inc(reason),
    retransmission: () => m.sipRetransmissions.inc(),
  });

  // TLS and WSS: the operator's certificate, or a self-signed one generated for local use.
  const needTls = config.sip.transports.includes('TLS') || config.sip.transports.includes('WSS');
  const tlsFiles = needTls ? loadTlsFiles({ dataDir: config.dataDir, certPath: config.tls.cert, keyPath: config.tls.key }) : null;
  if (tlsFiles?.selfSigned) log.warn({ cert: tlsFiles.certPath }, 'TLS and WSS use a self-signed certificate: fine for local use; set --tls-cert and --tls-key for production');
  const connectionClosed = new Hook<number>();
  const transports = new TransportLayer({
    hosts: config.sip.hosts,
    port: config.sip.port,
    tlsPort: config.sip.tlsPort,
    wsPort: config.sip.wsPort,
    wssPort: config.sip.wssPort,
    tls: tlsFiles ? { key: tlsFiles.key, cert: tlsFiles.cert, verifyPeers: config.tls.verifyPeers, context: tlsContextOptions(config.tls.ciphers) } : null,
    transports: config.sip.transports,
    maxMessageSize: config.sip.maxMessageSize,
    tcpIdleTimeoutMs: config.sip.tcpIdleTimeout * 1000,
    tcpMaxConnections: config.sip.tcpMaxConnections,
    maxConnectionsPerAddress: config.sip.maxConnectionsPerAddress,
    capExempt: new NetworkSet([...config.auth.trustedNetworks, ...config.sip.trustedProxies]),
    tcpMessageTimeoutMs: config.sip.tcpMessageTimeout * 1000,
    firstMessageTimeoutMs: config.sip.firstMessageTimeout * 1000,
    // Workers on one host share each port; the kernel spreads datagrams and connections between them.
    reusePort: o.reusePort,
    advertisedHost: config.sip.advertisedHost,
    logger: log.child({ component: 'transport' }),
    onMessage: endpoint.receive,
    onStreamError: endpoint.streamError,
    onDrop: (reason) => m.sipBadMessages.inc(reason),
    onConnectionClosed: (connectionId) => connectionClosed.emit(connectionId),
  });
  endpoint.attach(transports);
  m.observeSip({ connections: () => transports.connectionCount, serverTransactions: () => endpoint.stats.serverTransactions });

  // Requests for a flow another node holds (a NOTIFY to a phone on its TCP or WebSocket connection) go through
  // that node over the bus; it answers for the connections it holds.
  const relay = new FlowRelay({
    bus: o.bus,
    endpoint,
    node: o.node,
    log: log.child({ component: 'relay' }),
    connections: { isConnectionOpen: (id) => transports.isConnectionOpen(id), connectionPeer: (id) => transports.connectionPeer(id) },
    transport: transports,
  });
  // The responses of INVITE branches other nodes send through our connections go back to them.
  endpoint.onUnmatchedResponse((res, source) => relay.forwardResponse(res, source));

  const localHosts = new Set<string>(['localhost', o.node.toLowerCase()]);
  for (const a of o.interfaceAddresses) localHosts.add(a.toLowerCase());
  for (const h of config.sip.hosts) localHosts.add(h.toLowerCase());
  if (config.sip.advertisedHost) localHosts.add(config.sip.advertisedHost.toLowerCase());

  const beforeClose = new Hook<void>();
  const listeners: ListenerAddress[] = [];
  return {
    name: 'sip',
    endpoint,
    transports,
    relay,
    connectionClosed,
    beforeClose,
    listeners,
    isLocalHost: (h) => localHosts.has(h.charCodeAt(0) === 91 ? h.slice(1, -1) : h),
    start() {
      relay.start();
    },
    stop() {
      relay.close();
      endpoint.close();
    },
    listening: {
      name: 'sip-listeners',
      async start() {
        listeners.push(...(await transports.listen()));
      },
      async stop() {
        // Stop taking requests and let those in flight finish (their writes commit) before the services stop.
        endpoint.stopAccepting();
        await endpoint.drain(5000);
        await beforeClose.run();
        await transports.close();
      },
    },
  };
}
