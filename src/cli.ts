#!/usr/bin/env node
/**
 * ipgate's command line. Entry point: this file and main.ts are the only ones that exit the process.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseConfigText } from './config/load.js';
import { parseListen } from './config/schema.js';
import { startEchoBackend } from './demo/echo-backend.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { zodIssues } from './config/load.js';
import { FileStore } from './controlplane/store/file-store.js';
import { importIntoCluster, readConfiguredStore } from './controlplane/store/pg/open-store.js';
import type { StoreData } from './controlplane/store/state.js';
import { acquireStoreLock, lockHolder, releaseStoreLock } from './controlplane/store/lock.js';
import { exportSchema, exportState, importState, type ExportDoc } from './controlplane/store/portable.js';
import { stateForEnvironment } from './controlplane/store/to-state.js';
import { compileConfig, configToState } from './main.js';
import { launchGateway } from './launch.js';
import { explain, explainSchema } from './controlplane/explain.js';
import { exitOnFatalErrors, exitOnSignals, logShutdownFailure } from './lifecycle/process.js';
import proxyaddr from 'proxy-addr';

const HELP: Record<string, string> = {
  main: `Usage: ipgate <command> [options]

Commands:
  start    Start the gateway
  check    Validate a config and print what it compiles to
  export   Write the store's whole state as YAML (safe while the gateway runs)
  import   Replace the store's state from an export (the gateway must be stopped)
  ip-check Explain offline whether a request would be let through, and why

Run "ipgate <command> --help" for a command's options.`,
  start: `Usage: ipgate start [--config FILE] [--demo-backend HOST:PORT]

Start the gateway. SIGTERM or SIGINT stops it gracefully: the listeners stop accepting, requests
in flight finish (for up to drainTimeoutMs, default 30000), then it exits 0. After an uncaught
error it logs the error and exits 1.
  --config FILE              YAML config (default: $IPGATE_CONFIG)
  --demo-backend HOST:PORT   also start the demo echo backend on HOST:PORT
  -h, --help                 show this help`,
  check: `Usage: ipgate check [--config FILE]

Validate the config, compile every policy, print compile statistics, and exit
non-zero on any error. Nothing is started.
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  -h, --help      show this help`,
  export: `Usage: ipgate export [--config FILE] [--out FILE]

Write the whole state of the store named by the config (store.file, store.postgres or
$IPGATE_STORE) as YAML, in the config file's projects shape, to FILE or stdout. Reads only;
safe while a gateway runs.
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  --out FILE      write here instead of stdout
  -h, --help      show this help`,
  import: `Usage: ipgate import [--config FILE] --file EXPORT

Replace the store's state with EXPORT (written by ipgate export, or any file with a projects:
list in the config shape). Every proxy is deployed to the environments it lists. The whole file
is validated and compiled first; nothing is written if any of it is wrong. With the file store,
refuses while a gateway is running on it: use PUT /apiops/import/ on that gateway instead. With
store.postgres, the import is one write that the running nodes pick up; into an empty schema it
creates a new store (a new epoch, so every node reloads everything).
  --config FILE   YAML config (default: $IPGATE_CONFIG)
  --file EXPORT   the export to import
  -h, --help      show this help`,
  'ip-check': `Usage: ipgate ip-check (--config FILE | --export FILE) --project P --proxy A
                       (--ip ADDR | --remote-address ADDR [--header 'Name: value']...)
                       [--path /below/basePath] [--method GET] [--environment ENV]

Explain, without a running gateway, whether a request would be let through and why: prints the
JSON that POST .../apiProxies/{a}/ip-check/ on the admin API answers. Policies come from the
config's projects, or from an export (written by ipgate export) when --export is given; gateway
settings (trustedProxies, environment) come from the config, or are the defaults without one.
Exit status: 0 allowed, 1 denied, 2 error.
  --config FILE          YAML config (default: $IPGATE_CONFIG)
  --export FILE          take the policies from this export instead of the config's projects
  --project P            project name
  --proxy A              API proxy name
  --ip ADDR              the client's address, as a direct client without forwarding headers
  --remote-address ADDR  the socket peer's address; give the forwarding headers with --header
  --header 'N: V'        a request header (repeatable; repeated names form one list, in order)
  --path PATH            path below the proxy's basePath, with an optional query (default /)
  --method METHOD        HTTP method (default GET)
  --environment ENV      evaluate what ENV enforces (default: the config's environment)
  -h, --help             show this help`,
};

function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(code);
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
  const exit = (code: number) => process.exit(code);
  // The control-plane thread dying is a crash like any other: it is logged; exit for a restart.
  const gw = await launchGateway({ config, onControlPlaneExit: () => exit(1) });
  exitOnFatalErrors(gw.log, exit);
  exitOnSignals(
    async (signal) => {
      gw.log.info({ event: 'shutdown', signal, drainTimeoutMs: gw.config.drainTimeoutMs }, 'shutting down: draining requests in flight');
      await gw.close(gw.config.drainTimeoutMs);
    },
    exit,
    (err) => logShutdownFailure(gw.log, err),
    (signal) => gw.log.warn({ event: 'signal_ignored', signal }, `${signal} ignored: policies reload without a signal; SIGTERM stops gracefully`),
  );
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
  // The file store or the PostgreSQL cluster store: the same export either way.
  const store = await readConfiguredStore(config).catch((err: unknown) => fail((err as Error).message));
  const text = `# ipgate export of ${store.description}, revision ${store.data.revision}, ${new Date().toISOString()}\n` + stringify(exportState(store.data));
  if (values.out !== undefined) writeFileSync(values.out, text);
  else process.stdout.write(text);
}

/** An export file, validated like a config: a ConfigError names every bad key. */
function readExport(file: string): ExportDoc {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'), { uniqueKeys: true });
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read file: ${(err as Error).message}` }]);
  }
  const r = exportSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw new ConfigError(file, zodIssues(r.error));
  return r.data;
}

async function cmdImport(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, file: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    process.stdout.write(HELP.import + '\n');
    return;
  }
  if (values.file === undefined) fail('--file EXPORT is required');
  const { config } = loadConfig(values.config);
  if (config.store.postgres !== null) {
    // The cluster store takes an import while gateways run: it is one write, which every node picks up.
    const doc = readExport(values.file);
    const validate = (next: Readonly<StoreData>): void => {
      for (const env of next.environments) {
        const r = compileConfig(config, stateForEnvironment(next, env.name));
        if (!r.ok) fail(`import refused, ${env.name} would not compile:\n` + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
      }
    };
    const data = await importIntoCluster(config, doc, validate).catch((err: unknown) => fail(`import failed: ${(err as Error).message}`));
    process.stdout.write(`imported ${values.file} into PostgreSQL schema ${config.store.postgres.schema}: revision ${data.revision}, ${data.projects.length} projects\n`);
    return;
  }
  const file = storeFileOf(config);
  const holder = lockHolder(file);
  if (holder !== null) fail(`a gateway (pid ${holder.pid}) is using ${file} (host ${holder.host}); stop it, or use PUT /apiops/import/ on it`);
  const doc = readExport(values.file);
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

/** Flag names for the explain body's fields, so an error names what the user typed. */
const IP_CHECK_FLAGS: Record<string, string> = { ip: '--ip', remoteAddress: '--remote-address', headers: '--header', path: '--path', method: '--method', environment: '--environment' };

/** `ipgate ip-check`: exit 0 allowed, 1 denied, 2 error (as grep does: a "no" is not an error). */
function cmdIpCheck(args: string[]): void {
  try {
    ipCheck(args);
  } catch (err) {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) fail((err as Error).message, 2);
    throw err;
  }
}

function ipCheck(args: string[]): void {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      export: { type: 'string' },
      project: { type: 'string' },
      proxy: { type: 'string' },
      ip: { type: 'string' },
      'remote-address': { type: 'string' },
      header: { type: 'string', multiple: true },
      path: { type: 'string' },
      method: { type: 'string' },
      environment: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP['ip-check'] + '\n');
    return;
  }
  const usage: (message: string) => never = (message) => fail(`ipgate ip-check: ${message}\nRun "ipgate ip-check --help" for usage.`, 2);
  const project = values.project ?? usage('--project is required');
  const proxyName = values.proxy ?? usage('--proxy is required');
  const configFile = values.config ?? (process.env.IPGATE_CONFIG || undefined);
  if (configFile === undefined && values.export === undefined) usage('give --config FILE or --export FILE');
  // Without a config, the gateway defaults (and environment overrides) apply, as for a config of "{}".
  let { config, path: source } = configFile !== undefined ? loadConfig(configFile) : { config: parseConfigText('{}', '(defaults)', process.env), path: '(defaults)' };
  if (values.export !== undefined) {
    config = { ...config, projects: readExport(values.export).projects };
    source = values.export;
  }

  const headers: Record<string, string[]> = {};
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':');
    const name = colon === -1 ? '' : h.slice(0, colon).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) usage(`--header: expected 'Name: value', got ${JSON.stringify(h)}`);
    (headers[name] ??= []).push(h.slice(colon + 1).trim());
  }
  const input = explainSchema.safeParse({
    ip: values.ip,
    remoteAddress: values['remote-address'],
    headers: values.header === undefined ? undefined : headers,
    path: values.path,
    method: values.method?.toUpperCase(),
    environment: values.environment,
  });
  if (!input.success) {
    usage(input.error.issues.map((i) => `${IP_CHECK_FLAGS[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`).join('\n'));
  }
  const b = input.data;
  const environment = b.environment ?? config.environment;
  const r = compileConfig({ ...config, environment }, configToState(config));
  if (!r.ok) fail(`policies in ${source} do not compile:\n` + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'), 2);
  // Names are matched case-insensitively, as the admin API does.
  const same = (x: string, y: string) => x.toLowerCase() === y.toLowerCase();
  const proxy = r.snapshot.proxies.find((p) => same(p.projectName, project) && same(p.name, proxyName));
  if (proxy === undefined) {
    const exists = config.projects.some((p) => same(p.name, project) && p.apiProxies.some((a) => same(a.name, proxyName)));
    fail(exists ? `API proxy ${proxyName} is not deployed to ${environment}` : `no API proxy ${project}/${proxyName} in ${source}`, 2);
  }
  const answer = explain(proxy, proxyaddr.compile(config.trustedProxies), b, environment, null);
  process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
  process.exitCode = answer.decision === 'allowed' ? 0 : 1;
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
    case 'ip-check':
      return cmdIpCheck(rest);
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
