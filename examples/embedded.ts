// Switchboard embedded in a program, with call routing in code: the library form of --routing-module.
// Run: node examples/embedded.ts (Node 24) after `switchboard users add alice@example.com …`.
import { loadConfig } from '../src/config.ts';
import { startServer } from '../src/server.ts';

const server = await startServer(loadConfig({ flags: { realm: ['example.com'], 'data-dir': './data' } }));

// Every new call passes here first; 'default' leaves it to the location service.
server.onRoute(async (call) => {
  server.log.info({ from: call.from, to: call.callee, via: call.caller.transport }, 'call');
  if (call.callee === 'blocked@example.com') return { reject: 603, reason: 'Declined' };
  return 'default';
});

process.once('SIGINT', () => void server.stop());
