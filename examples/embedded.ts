// Switchboard embedded in a program: a registrar, presence server and calling proxy in a few lines, with call
// routing in code (the library form of --routing-module: the same 'default' / { reject } / { targets } contract).
// Run from this checkout (the package imports itself by name), Node 24:
//   ./bin/switchboard user add alice@example.com --password 'correct horse'
//   node examples/embedded.ts
import { createServer } from 'switchboard';

const server = createServer({ config: { realms: ['example.com'], dataDir: './data', sip: { port: 5060 } } });

// Every new call passes here first, once the caller is authenticated; 'default' leaves it to the location service.
server.onRoute(async (call) => {
  if (call.callee === 'blocked@example.com') return { reject: 603, reason: 'Declined' };
  if (call.callee === 'support@example.com') return { targets: ['sip:desk1@192.0.2.21:5060', 'sip:desk2@192.0.2.22:5060'] };
  return 'default';
});

const running = await server.listen();
running.log.info({ sip: running.sip, http: running.http }, 'serving');
process.once('SIGINT', () => void server.close());
