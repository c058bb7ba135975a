#!/usr/bin/env node
/**
 * ipgate's command line. Entry point: this file and main.ts are the only ones that exit the process.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.js';
import { parseListen } from './config/schema.js';
import { startEchoBackend } from './demo/echo-backend.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { zodIssues } from './config/load.js';
import { FileStore } from './controlplane/store/file-store.js';
import { acquireStoreLock, lockHolder, releaseStoreLock } from './controlplane/store/lock.js';
import { exportSchema, exportState, importState } from './controlplane/store/portable.js';
import { stateForEnvironment } from './controlplane/store/to-state.js';
import { compileConfig, configToState, Gateway } from './main.js';

const HELP: Record<string, string> = {
  main: `Usage: ipgate <command> [options]

Commands:
  start    Start the gateway
  check    Validate a config and print what it compiles to
  export   Write the store's whole state as YAML (safe while the gateway runs)
  import   Replace the store's state from an export (the gateway must be stopped)

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
  export: `Usage: ipgate export [--config FILE] [--out FILE]

Write the whole state of the store named by the config (store.file or $IPGATE_STORE) as YAML,
in the config file's projects shape, to FILE or stdout. Reads only; safe while a gateway runs.
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  --out FILE      write here instead of stdout
  -h, --help      show this help`,
  import: `Usage: ipgate import [--config FILE] --file EXPORT

Replace the store's state with EXPORT (written by ipgate export, or any file with a projects:
list in the config shape). Every proxy is deployed to the environments it lists. The whole file
is validated and compiled first; nothing is written if any of it is wrong. Refuses while a
gateway is running on the store: use PUT /apiops/import/ on that gateway instead.
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  --file EXPORT   the export to import
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

function storeFileOf(config: { store: { file: string | null } }): string {
  if (config.store.file === null) fail('no store is configured: set store.file in the config or IPGATE_STORE');
  return config.store.file;
}

async function cmdExport(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(HELP.export + '\n');
    return;
  }
  const { config } = loadConfig(values.config);
  const file = storeFileOf(config);
  const store = await FileStore.open(file);
  if (store === null) fail(`store ${file} does not exist`);
  const text = `# ipgate export of ${file}, revision ${store.data.revision}, ${new Date().toISOString()}\n` + stringify(exportState(store.data));
  if (values.out !== undefined) writeFileSync(values.out, text);
  else process.stdout.write(text);
}

async function cmdImport(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, file: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(HELP.import + '\n');
    return;
  }
  if (values.file === undefined) fail('--file EXPORT is required');
  const { config } = loadConfig(values.config);
  const file = storeFileOf(config);
  const holder = lockHolder(file);
  if (holder !== null) fail(`a gateway (pid ${holder}) is using ${file}; stop it, or use PUT /apiops/import/ on it`);
  let doc;
  try {
    const raw: unknown = parse(readFileSync(values.file, 'utf8'), { uniqueKeys: true });
    const r = exportSchema.safeParse(raw, { reportInput: true });
    if (!r.success) throw new ConfigError(values.file, zodIssues(r.error));
    doc = r.data;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    fail(`cannot read ${values.file}: ${(err as Error).message}`);
  }
  acquireStoreLock(file);
  try {
    const existing = await FileStore.open(file);
    const next = importState(existing?.data ?? null, doc, config.environment);
    // Compile every environment before writing anything.
    for (const env of next.environments) {
      const r = compileConfig(config, stateForEnvironment(next, env.name));
      if (!r.ok) fail(`import refused, ${env.name} would not compile:\n` + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
    }
    const store = existing ?? (await FileStore.create(file, { ...next, revision: 0 }));
    const data = await store.replace(next);
    await store.close();
    process.stdout.write(`imported ${values.file} into ${file}: revision ${data.revision}, ${data.projects.length} projects\n`);
  } finally {
    releaseStoreLock(file);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return cmdStart(rest);
    case 'check':
      return cmdCheck(rest);
    case 'export':
      return cmdExport(rest);
    case 'import':
      return cmdImport(rest);
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
