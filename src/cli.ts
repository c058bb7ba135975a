#!/usr/bin/env node
/**
 * ipgate's command line. Entry point: this file and main.ts are the only ones that exit the process.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.js';
import { parseListen } from './config/schema.js';
import { startEchoBackend } from './demo/echo-backend.js';
import { compileConfig, configToState, Gateway } from './main.js';

const HELP: Record<string, string> = {
  main: `Usage: ipgate <command> [options]

Commands:
  start   Start the gateway
  check   Validate a config and print what it compiles to

Run "ipgate <command> --help" for a command's options.`,
  start: `Usage: ipgate start [--config FILE] [--demo-backend HOST:PORT]

Start the gateway.
  --config FILE              YAML config (default: $IPGATE_CONFIG)
  --demo-backend HOST:PORT   also start the demo echo backend on HOST:PORT
  -h, --help                 show this help`,
  check: `Usage: ipgate check [--config FILE]

Validate the config, compile every policy, print compile statistics, and exit
non-zero on any error. Nothing is started.
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  -h, --help      show this help`,
};

function fail(message: string): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(1);
}

async function cmdStart(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, 'demo-backend': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(HELP.start + '\n');
    return;
  }
  const { config } = loadConfig(values.config);
  if (values['demo-backend'] !== undefined) {
    const l = parseListen(values['demo-backend']);
    if (l === null) fail(`--demo-backend: expected HOST:PORT, got ${JSON.stringify(values['demo-backend'])}`);
    const { address } = await startEchoBackend(l.host, l.port);
    process.stderr.write(`demo echo backend listening on ${address.address}:${address.port}\n`);
  }
  const gw = await Gateway.start({ config });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gw.log.info({ event: 'shutdown', signal }, 'shutting down');
    gw.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function cmdCheck(args: string[]): void {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(HELP.check + '\n');
    return;
  }
  const { config, path } = loadConfig(values.config);
  const r = compileConfig(config, configToState(config));
  if (!r.ok) fail(`invalid configuration in ${path}:\n` + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
  const s = r.snapshot.stats;
  const lines = [
    `config ${path}: OK`,
    `environment: ${config.environment}`,
    `listen: ${config.listen}`,
    `trusted proxies: ${config.trustedProxies.join(', ') || '(none)'}`,
    `API proxies routed here: ${s.proxies}`,
    `active policies: ${s.policies}`,
    `entries: ${s.entries} (${s.prefixes} CIDR prefixes after range/wildcard decomposition)`,
    `trie: ${s.trieNodes} nodes, ${s.trieBytes} bytes`,
    `compile time: ${s.compileMs.toFixed(1)} ms`,
  ];
  for (const p of r.snapshot.proxies) {
    const count = (pipe: typeof p.request) => (pipe === null ? 0 : pipe.proxyWide.length + pipe.endpoint.length);
    lines.push(`  ${p.projectName}/${p.name} ${p.basePath} -> ${p.upstream.origin}${p.upstream.pathPrefix}  policies: request ${count(p.request)}, response ${count(p.response)}, error ${count(p.error)}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return cmdStart(rest);
    case 'check':
      return cmdCheck(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP.main + '\n');
      return;
    default:
      fail(`unknown command ${JSON.stringify(command)}\n\n${HELP.main}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message);
  if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail(err.message);
  fail(`ipgate: ${(err as Error).stack ?? String(err)}`);
});
