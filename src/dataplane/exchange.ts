/**
 * One HTTP request through the gateway. HOT PATH.
 *
 * Flow: (route already matched) → optional bounded body buffering → REQUEST pipeline → forward
 * with undici → RESPONSE pipeline → stream the answer back. A gateway-produced error (413, 502,
 * 504) goes through the ERROR pipeline first, so a rejected client sees the 403 and never the
 * error details. The Exchange holds the snapshot it started with, so a reload mid-request changes
 * nothing for it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { CompiledPipeline, CompiledProxy } from '../policy/snapshot.js';
import { evaluatePipeline, pipelineNeedsBody, type Rejection } from './decide.js';
import { FAULTS, type FaultCode } from './faults.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { RequestContext } from './request-context.js';
import type { DataPlaneShared } from './shared.js';
import { classifyUpstreamError } from './upstream-errors.js';
import { upstreamPath } from './upstream-path.js';

class BodyTooLarge extends Error {
  constructor() {
    super('request body exceeds the limit');
  }
}

/**
 * The Exchange is also the undici dispatch handler of its upstream request: the response is
 * written straight into the client's response as it arrives, with backpressure through the
 * dispatch controller. This avoids what `pool.request()` + `stream.pipeline()` cost per request
 * (an AbortController and AbortSignal wiring, a body Readable, the pipeline's own AbortController
 * and the DOMException it builds on completion), which profiling showed as the largest share of
 * the gateway's own time beyond a bare forwarder.
 */
export class Exchange extends RequestContext implements Dispatcher.DispatchHandler {
  private rejection: Rejection | null = null;
  private done = false;
  /** The upstream request's controller, once undici has started it. */
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  /** Armed while the upstream is paused for a client that is not reading (see onResponseData). */
  private stallTimer: NodeJS.Timeout | null = null;
  /** When the upstream request was sent (performance.now()), for ipgate_upstream_duration_seconds. */
  private sentAt = 0;

  constructor(
    shared: DataPlaneShared,
    private readonly proxy: CompiledProxy,
    private readonly pool: Pool,
    req: IncomingMessage,
    private readonly res: ServerResponse,
    correlationId: string,
    path: string,
    relPath: string,
    search: string,
    private readonly startedAt: number,
  ) {
    super(shared, req, correlationId, path, relPath, search);
  }

  // ---- flow ------------------------------------------------------------------------------------

  start(): void {
    const req = this.req;
    const limit = this.shared.limits.requestBodyBytes;
    const cl = req.headers['content-length'];
    if (cl !== undefined && Number(cl) > limit) {
      // Refuse before reading; the connection is closed so the unread body cannot be misparsed.
      this.res.shouldKeepAlive = false;
      this.gatewayError('PAYLOAD_TOO_LARGE', `Request body of ${cl} bytes exceeds the limit of ${limit} bytes`);
      return;
    }
    if (this.proxy.needsBody && this.hasBody() && this.someNeedsBody()) {
      this.bufferBody();
      return;
    }
    this.afterBody();
  }

  private someNeedsBody(): boolean {
    const p = this.proxy;
    return pipelineNeedsBody(p.request, this.methodBit, this.relPath) || pipelineNeedsBody(p.response, this.methodBit, this.relPath) || pipelineNeedsBody(p.error, this.methodBit, this.relPath);
  }

  private hasBody(): boolean {
    const h = this.req.headers;
    return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
  }

  /** Bounded buffering for BODY sources: past the limit the client gets 413 and nothing is forwarded. */
  private bufferBody(): void {
    const req = this.req;
    const max = Math.min(this.shared.limits.bodyBufferBytes, this.shared.limits.requestBodyBytes);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.off('end', onEnd);
        this.res.shouldKeepAlive = false;
        this.gatewayError('PAYLOAD_TOO_LARGE', `Request body exceeds the buffering limit of ${max} bytes for body-based client IP resolution`);
        req.resume();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      this.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      // An event handler: nothing up the stack would catch a bug here, and it would end the process.
      try {
        this.afterBody();
      } catch (err) {
        this.shared.internalError(this.res, this.correlationId, err);
      }
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', () => this.abortClient());
  }

  private afterBody(): void {
    const pipe = this.proxy.request;
    if (pipe !== null) {
      const r = evaluatePipeline(pipe, this);
      if (r !== null) {
        this.reject(r);
        return;
      }
    }
    this.forward();
  }

  private forward(): void {
    const req = this.req;
    const up = this.proxy.upstream;
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (this.body !== null) body = this.body;
    else if (this.hasBody()) body = req.headers['content-length'] === undefined ? Readable.from(limitStream(req, this.shared.limits.requestBodyBytes), { objectMode: false }) : req;
    // A client that goes away stops the upstream request (and frees its upstream connection).
    this.res.once('close', () => {
      this.clearStall();
      if (!this.res.writableFinished) this.controller?.abort(new ClientGone());
    });
    this.sentAt = performance.now();
    try {
      this.pool.dispatch(
        {
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          path: upstreamPath(this.proxy, this.path, this.relPath, this.search),
          headers: upstreamRequestHeaders(req, {
            peerAddress: req.socket.remoteAddress ?? '',
            peerTrusted: this.peerTrusted,
            encrypted: (req.socket as { encrypted?: boolean }).encrypted === true,
            correlationId: this.correlationId,
          }),
          body,
          headersTimeout: up.headersTimeoutMs,
          bodyTimeout: up.bodyTimeoutMs,
        },
        this,
      );
    } catch (err) {
      this.onUpstreamError(err);
    }
  }

  // ---- undici DispatchHandler (the upstream response) --------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left while the request waited in the pool's queue.
    if (this.res.destroyed) controller.abort(new ClientGone());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx informational: the final response follows
    // Upstream time ends at the response headers: the body streams at the client's pace.
    this.shared.upstreamTimed(this.proxy, (performance.now() - this.sentAt) / 1000);
    if (this.done || this.res.destroyed) {
      controller.abort(new ClientGone());
      return;
    }
    const pipe = this.proxy.response;
    if (pipe !== null) {
      const rej = evaluatePipeline(pipe, this);
      if (rej !== null) {
        // The upstream answered, but this client may not see a byte of it.
        controller.abort(new ClientGone());
        this.reject(rej);
        return;
      }
    }
    this.done = true;
    this.status = statusCode;
    this.res.writeHead(statusCode, clientResponseHeaders(headers, this.correlationId));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const res = this.res;
    if (res.destroyed) {
      controller.abort(new ClientGone());
      return;
    }
    if (!res.write(chunk)) {
      // Backpressure: stop reading the upstream until the client has taken what was written.
      controller.pause();
      // undici's body timeout does not run while paused, so a client that never reads would hold
      // this upstream request, and its pooled connection, for ever: a slow-read attack on the
      // upstream pool. A client that takes nothing for bodyTimeoutMs is disconnected instead.
      this.stallTimer ??= setTimeout(() => {
        this.stallTimer = null;
        res.destroy();
        controller.abort(new ClientGone());
      }, this.proxy.upstream.bodyTimeoutMs);
      res.once('drain', () => {
        this.clearStall();
        controller.resume();
      });
    }
  }

  private clearStall(): void {
    if (this.stallTimer !== null) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
  }

  onResponseEnd(): void {
    const res = this.res;
    if (res.destroyed) return;
    res.once('finish', () => this.finished(this.status, 'allowed'));
    res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.status !== 0) {
      // Mid-body: the status line is gone, so the only honest signal left is a broken response.
      if (!(err instanceof ClientGone)) this.shared.upstreamError(this.proxy, classifyUpstreamError(err) === 'timeout' ? 'timeout' : 'reset', err);
      this.res.destroy();
      return;
    }
    if (err instanceof ClientGone) return;
    this.onUpstreamError(err);
  }

  private onUpstreamError(err: unknown): void {
    if (this.done || this.res.destroyed) return;
    if (err instanceof BodyTooLarge || (err as { cause?: unknown }).cause instanceof BodyTooLarge) {
      this.res.shouldKeepAlive = false;
      this.gatewayError('PAYLOAD_TOO_LARGE', `Request body exceeds the limit of ${this.shared.limits.requestBodyBytes} bytes`);
      return;
    }
    const kind = classifyUpstreamError(err);
    if (kind === 'aborted') return;
    this.shared.upstreamTimed(this.proxy, (performance.now() - this.sentAt) / 1000);
    this.shared.upstreamError(this.proxy, kind, err);
    if (kind === 'timeout') this.gatewayError('UPSTREAM_TIMEOUT', `Upstream ${this.proxy.name} did not answer in time`);
    else this.gatewayError('UPSTREAM_UNAVAILABLE', `Upstream ${this.proxy.name} is unavailable (${kind})`);
  }

  /** A gateway-produced error: the ERROR pipeline decides whether the client may see it. */
  private gatewayError(code: FaultCode, text: string): void {
    const pipe: CompiledPipeline | null = this.proxy.error;
    if (pipe !== null) {
      const rej = evaluatePipeline(pipe, this);
      if (rej !== null) {
        this.reject(rej);
        return;
      }
    }
    this.sendFault(code, FAULTS[code].status, text, 'error');
  }

  private reject(r: Rejection): void {
    this.rejection = r;
    this.sendFault(r.code, r.status, r.faultString, 'denied');
  }

  private sendFault(code: string, status: number, text: string, decision: string): void {
    if (this.done) return;
    this.done = true;
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    this.shared.writeFault(res, this.correlationId, code, status, text);
    res.once('finish', () => this.finished(status, decision));
  }

  private abortClient(): void {
    this.done = true;
    this.res.destroy();
  }

  private finished(status: number, decision: string): void {
    this.shared.finished(this, this.proxy, status, this.dryRuns !== null && decision === 'allowed' ? 'dry_run_denied' : decision, this.rejection, this.dryRuns, this.req, this.startedAt);
  }
}

/** The reason given to undici when the gateway itself stops an upstream request. */
class ClientGone extends Error {
  constructor() {
    super('the client response is closed or was refused');
  }
}

/** Streams a chunked request body, failing once it passes `limit` bytes. */
async function* limitStream(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge();
    yield chunk as Buffer;
  }
}

export { BodyTooLarge };
