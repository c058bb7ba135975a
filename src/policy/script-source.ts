/**
 * SCRIPT client-IP sources, compiled once with node:vm.
 *
 * The request data is handed to the script as a JSON string and parsed inside the script's own
 * context, so the script only ever sees objects of its own realm: it cannot reach the gateway's
 * objects (and through their constructors, `process`). node:vm is still not a security boundary
 * against hostile code; SCRIPT sources are written by admins, not by clients. The time limit
 * bounds a runaway expression (an infinite loop becomes "undeterminable", not a stuck worker).
 */
import { Script, createContext } from 'node:vm';
import type { ScriptRunner } from './snapshot.js';

export function compileScriptSource(expression: string, timeoutMs: number): ScriptRunner {
  const script = new Script(
    `(function () { "use strict"; const { headers, query, remoteAddress } = JSON.parse(__ipgateInput); return (${expression}\n); })()`,
    { filename: 'targetVariableForIP.script' },
  );
  // microtaskMode keeps promise jobs queued by the script inside the same time limit.
  const context = createContext(Object.create(null) as object, { microtaskMode: 'afterEvaluate', codeGeneration: { strings: false, wasm: false } });
  const ctx = context as { __ipgateInput?: string };
  return (input) => {
    ctx.__ipgateInput = JSON.stringify(input);
    return script.runInContext(context, { timeout: timeoutMs, displayErrors: false });
  };
}
