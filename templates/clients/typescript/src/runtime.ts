// The hand-written part of the ryla fleet client (copied by `ryla-gen build` from
// templates/clients/typescript/). Do not edit the copy in generated/.

/** Where the apps are: one base URL per app, one fleet URL for all, or a Modal workspace. */
export interface ClientOptions {
  /** Base URL per app name (e.g. `{"ryla-demo": "http://127.0.0.1:8000"}`); wins over the rest. */
  baseUrls?: Record<string, string>;
  /** One URL serving every endpoint (a fleet router or the monolith). */
  fleetUrl?: string;
  /** Modal workspace: deployed apps' URLs are formed from it (`https://WS--APP-CLASS.modal.run`). */
  workspace?: string;
  /** Sent with every request (e.g. `Modal-Key`/`Modal-Secret` or `Authorization`). */
  headers?: Record<string, string>;
  /** Default time limit of one HTTP request, in milliseconds. */
  timeoutMs?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** Per call: cancel with a signal, limit the time, add headers. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

/** One output of a run, with what the server reported in its headers. */
export interface RunResult {
  data: Uint8Array;
  contentType: string;
  executionTimeSec: number | null;
  costUsd: number | null;
  gpuType: string | null;
  /** The seed used (X-Seed), as a decimal string: seeds may exceed 2^53. */
  seed: string | null;
  /** Every response header, lower-case names. */
  headers: Record<string, string>;
}

/** The servers' error body. */
export interface ErrorBody {
  error: string;
  details?: unknown;
  type: string;
}

/** A non-2xx answer: the HTTP status and the server's `{error, details, type}`. */
export class RylaError extends Error implements ErrorBody {
  readonly status: number;
  readonly error: string;
  readonly details: unknown;
  readonly type: string;

  constructor(status: number, body: ErrorBody) {
    super(`${status} ${body.type}: ${body.error}`);
    this.name = "RylaError";
    this.status = status;
    this.error = body.error;
    this.details = body.details;
    this.type = body.type;
  }
}

/** Which deployed app and class serve an endpoint. */
export interface Target {
  app: string;
  urlLabel: string;
}

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "expired";
export const FINAL_STATES: readonly string[] = ["succeeded", "failed", "cancelled", "expired"];

/** GET /jobs/{id}: state, progress 0..1 and the node running now. */
export interface JobStatus {
  job_id: string;
  status: JobState;
  progress?: number;
  node?: string | null;
  status_url: string;
  result_url?: string;
  error?: unknown;
  http_status?: number;
  [key: string]: unknown;
}

/** One Server-Sent Event of GET /jobs/{id}/events. */
export interface JobEvent {
  id: string;
  event: string;
  status: JobStatus;
}

export interface SubmitOptions extends CallOptions {
  /** Same key and body: the same job (a retried submit does not run twice). */
  idempotencyKey?: string;
  /** Gets the final status, signed. */
  webhookUrl?: string;
}

export interface WaitOptions {
  signal?: AbortSignal;
  /** First poll interval (default 500 ms), growing by `factor` (1.5) up to `maxIntervalMs` (5 s). */
  intervalMs?: number;
  maxIntervalMs?: number;
  factor?: number;
  /** Give up after this long (rejects with a TimeoutError). */
  timeoutMs?: number;
  onStatus?: (status: JobStatus) => void;
}

interface RequestArgs {
  /** A jobs route: sent to the app's own URL before the fleet URL. */
  jobs?: boolean;
  body?: unknown;
  accept?: string;
  headers?: Record<string, string>;
  call?: CallOptions | undefined;
}

function combine(signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.error === "string" && typeof record.type === "string";
}

async function toError(response: Response): Promise<RylaError> {
  const text = await response.text();
  let body: ErrorBody = { error: text || response.statusText, type: "http_error" };
  try {
    const parsed: unknown = JSON.parse(text);
    if (isErrorBody(parsed)) body = parsed;
  } catch {
    // not JSON: keep the text
  }
  return new RylaError(response.status, body);
}

async function toResult(response: Response): Promise<RunResult> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => {
    headers[key] = value;
  });
  const number = (name: string): number | null => {
    const value = response.headers.get(name);
    return value === null ? null : Number(value);
  };
  return {
    data: new Uint8Array(await response.arrayBuffer()),
    contentType: response.headers.get("content-type") ?? "application/octet-stream",
    executionTimeSec: number("x-execution-time-sec"),
    costUsd: number("x-cost-usd"),
    gpuType: response.headers.get("x-gpu-type"),
    seed: response.headers.get("x-seed"),
    headers,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Sends requests: URLs, headers, time limits, errors. Shared by every app of a fleet. */
export class Transport {
  constructor(readonly options: ClientOptions = {}) {}

  /** Where `target` is: its own URL first for jobs (the fleet's front door runs none). */
  baseUrl(target: Target, jobs = false): string {
    const { baseUrls, fleetUrl, workspace } = this.options;
    const own = workspace ? `https://${workspace}--${target.app}-${target.urlLabel}.modal.run` : undefined;
    const url = baseUrls?.[target.app] ?? (jobs ? (own ?? fleetUrl) : (fleetUrl ?? own));
    if (url === undefined) {
      throw new Error(`no URL for app ${target.app}: give baseUrls, fleetUrl or workspace`);
    }
    return url.replace(/\/+$/, "");
  }

  async request(target: Target, method: string, path: string, args: RequestArgs = {}): Promise<Response> {
    const { body, accept, call } = args;
    const timeoutMs = call?.timeoutMs ?? this.options.timeoutMs;
    const signal = combine([
      call?.signal,
      timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
    ]);
    const headers: Record<string, string> = { ...this.options.headers, ...args.headers, ...call?.headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (accept !== undefined) headers.accept = accept;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (signal !== undefined) init.signal = signal;
    const url = this.baseUrl(target, args.jobs ?? false) + path;
    const response = await (this.options.fetch ?? fetch)(url, init);
    if (!response.ok) throw await toError(response);
    return response;
  }

  /** POST an endpoint and wait for its output. */
  async run(target: Target, path: string, request: object, call?: CallOptions): Promise<RunResult> {
    return toResult(await this.request(target, "POST", path, { body: request, call }));
  }

  /** POST /jobs/<path>: 202 with the job id. */
  async submit(target: Target, path: string, request: object, options: SubmitOptions = {}): Promise<Job> {
    const body: Record<string, unknown> = { ...request };
    if (options.webhookUrl !== undefined) body.webhook_url = options.webhookUrl;
    const headers: Record<string, string> = {};
    if (options.idempotencyKey !== undefined) headers["idempotency-key"] = options.idempotencyKey;
    const response = await this.request(target, "POST", `/jobs${path}`, {
      body,
      headers,
      call: options,
      jobs: true,
    });
    const answer = (await response.json()) as { job_id: string };
    return new Job(this, target, answer.job_id);
  }

  async toResult(response: Response): Promise<RunResult> {
    return toResult(response);
  }
}

/** A submitted job: status, wait (polling with backoff), events (SSE), result, cancel. */
export class Job {
  constructor(
    readonly transport: Transport,
    readonly target: Target,
    readonly id: string,
  ) {}

  private get path(): string {
    return `/jobs/${encodeURIComponent(this.id)}`;
  }

  async status(call?: CallOptions): Promise<JobStatus> {
    const response = await this.transport.request(this.target, "GET", this.path, { call, jobs: true });
    return (await response.json()) as JobStatus;
  }

  /** Poll until the job is final, waiting longer between polls (backoff). */
  async wait(options: WaitOptions = {}): Promise<JobStatus> {
    let interval = options.intervalMs ?? 500;
    const maxInterval = options.maxIntervalMs ?? 5000;
    const factor = options.factor ?? 1.5;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const status = await this.status(options.signal ? { signal: options.signal } : undefined);
      options.onStatus?.(status);
      if (FINAL_STATES.includes(status.status)) return status;
      if (Date.now() + interval > deadline) {
        throw new DOMException(`job ${this.id} is still ${status.status}`, "TimeoutError");
      }
      await sleep(interval, options.signal);
      interval = Math.min(maxInterval, interval * factor);
    }
  }

  /**
   * Progress as Server-Sent Events until the final status. A dropped connection is resumed
   * with `Last-Event-ID` (nothing is repeated, the final status is never missed).
   */
  async *events(options: { signal?: AbortSignal; lastEventId?: string; retries?: number } = {}): AsyncGenerator<JobEvent> {
    let lastId = options.lastEventId;
    let retries = options.retries ?? 5;
    for (;;) {
      const headers: Record<string, string> = {};
      if (lastId !== undefined) headers["last-event-id"] = lastId;
      const call: CallOptions = options.signal ? { signal: options.signal } : {};
      let response: Response;
      try {
        response = await this.transport.request(this.target, "GET", `${this.path}/events`, {
          accept: "text/event-stream",
          headers,
          call,
          jobs: true,
        });
      } catch (error) {
        if (error instanceof RylaError || options.signal?.aborted || retries-- <= 0) throw error;
        await sleep(500, options.signal);
        continue;
      }
      let final = false;
      try {
        for await (const event of parseEvents(response)) {
          lastId = event.id;
          yield event;
          if (FINAL_STATES.includes(event.status.status)) final = true;
        }
      } catch (error) {
        if (options.signal?.aborted || retries-- <= 0) throw error;
      }
      if (final) return;
      if (retries-- <= 0) throw new Error(`job ${this.id}: event stream ended before the final status`);
      await sleep(500, options.signal);
    }
  }

  /** The output of a succeeded job (a failed one rejects with its RylaError). */
  async result(call?: CallOptions): Promise<RunResult> {
    const response = await this.transport.request(this.target, "GET", `${this.path}/result`, {
      call,
      jobs: true,
    });
    return this.transport.toResult(response);
  }

  async cancel(call?: CallOptions): Promise<JobStatus> {
    const response = await this.transport.request(this.target, "DELETE", this.path, { call, jobs: true });
    return (await response.json()) as JobStatus;
  }
}

async function* parseEvents(response: Response): AsyncGenerator<JobEvent> {
  if (response.body === null) return;
  const decoder = new TextDecoder();
  let buffer = "";
  let id = "";
  let event = "message";
  let data: string[] = [];
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (data.length > 0) {
            yield { id, event, status: JSON.parse(data.join("\n")) as JobStatus };
          }
          event = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") id = value;
          else if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}
