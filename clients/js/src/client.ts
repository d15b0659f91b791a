import { ApiError, BatchFailed, RequestTimeout, TransportError, WaitTimedOut, apiError } from "./errors.js";
import type {
  Accepted,
  Consistency,
  CountResponse,
  CreatedKey,
  DatasetVersionView,
  DatasetView,
  Filter,
  Include,
  KeyView,
  Metric,
  FieldType,
  OperationView,
  Retention,
  ScrollResponse,
  SearchBatchResponse,
  SearchResponse,
  SnapshotSchedule,
  SnapshotScheduleView,
  SnapshotView,
  VectorView,
  VectorsResponse,
} from "./models.js";
import {
  DEFAULT_RETRIES,
  RETRY_STATUSES,
  type ImageInput,
  type Retries,
  type UpsertRecord,
  type Vector,
  batchKey,
  batches,
  image,
  pack,
  recordBody,
  retryAfter,
  retryDelay,
} from "./wire.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface TributaryOptions {
  /** The server, or where the command and query APIs are served apart, the command API (writes and keys). */
  url?: string;
  apiKey?: string;
  /** The query API, where it is served apart from `url`. */
  readUrl?: string;
  retries?: Retries;
  /** Each attempt's deadline in milliseconds (60,000). */
  timeoutMs?: number;
  /** Read each dataset at `session` consistency with the client's last write to it, unless told otherwise (true). */
  readYourWrites?: boolean;
}

/**
 * How a read waits for writes: by default `session` with this client's last token for the dataset. Or `version`:
 * answer from that past version (an id from `versions`, a tag or a snapshot id), read-only; what it holds is fixed,
 * so no level or remembered token applies (one given is sent, for the server to refuse).
 */
export interface ReadOptions {
  consistency?: Consistency;
  token?: string;
  version?: string;
}

export interface WriteOptions {
  /** Answer once the write is applied (false: at once, with the operation). */
  wait?: boolean;
}

export interface CreateDatasetOptions extends WriteOptions {
  metric?: Metric;
  metadata_schema?: Record<string, FieldType>;
  text_field?: string | null;
  embedder?: Record<string, unknown> | null;
  /** Named vector fields beside the default vector, e.g. {image: {dimensions: 512, metric: "cosine"}}. */
  vectors?: Record<string, Record<string, unknown>>;
}

export interface UpsertOptions extends WriteOptions {
  /** Without one the call makes its own, so its retries are applied once. */
  idempotencyKey?: string;
}

export interface UpsertManyOptions extends WriteOptions {
  /** Records per request (1,000). */
  batchSize?: number;
  /** Requests at a time (4). */
  inFlight?: number;
  /** Give the same prefix to resume an interrupted ingest: batches already applied are answered, not applied again. */
  keyPrefix?: string;
  /** The index of the batch `records` starts at, when resuming. */
  firstBatch?: number;
  /** Called as each batch is acknowledged, in order, with its number of records and the answer. */
  onBatch?: (records: number, answer: Accepted) => void;
}

/** What `upsertMany` sent: every batch acknowledged, in order. */
export interface IngestReport {
  records: number;
  batches: Accepted[];
}

export interface DeleteOptions extends WriteOptions {
  ids?: readonly string[];
  /** Every vector whose metadata matches. */
  filter?: Filter;
}

export interface UpdateMetadataOptions extends WriteOptions {
  /** Merge into the metadata (true) or replace it. */
  merge?: boolean;
}

/** A search: the request's fields, with the vector as numbers or a Float32Array. */
/** One input of a fused search: a vector field with a vector (or text its embedder embeds), or BM25 ("text"). */
export interface QueryInput {
  mode?: "vector" | "text";
  field?: string;
  vector?: Vector;
  text?: string;
  /** An image the field's image embedder embeds: its bytes, or a URL. */
  image?: ImageInput;
  weight?: number;
}

export interface SearchQuery {
  vector?: Vector;
  text?: string;
  mode?: "vector" | "text" | "hybrid";
  /** The vector field searched: "vector" (the default vector) or a named field. */
  field?: string;
  /** A query image of an image field, embedded by its image embedder: its bytes, or a URL. */
  image?: ImageInput;
  /** Several inputs fused at once, instead of vector, text, mode, field and alpha. */
  queries?: readonly QueryInput[];
  k?: number;
  offset?: number;
  filter?: Filter;
  include?: readonly Include[];
  score_threshold?: number;
  fusion?: "rrf" | "min_max" | "dbsf" | "weighted";
  rrf_k?: number;
  alpha?: number;
  /** Scan every row instead of the HNSW index: the exact top k. */
  exact?: boolean;
  /** The HNSW search breadth instead of the one tuned to the dataset's target recall. */
  ef?: number;
}

export interface GetOptions extends ReadOptions {
  include?: readonly Include[];
}

export interface ScrollOptions extends ReadOptions {
  filter?: Filter;
  /** Vectors per request (1,000). */
  pageSize?: number;
  include?: readonly Include[];
}

export interface CountOptions extends ReadOptions {
  filter?: Filter;
}

/** The retention (`keep_last`, `max_age_days`) applied after the snapshot, when given. */
export interface CreateSnapshotOptions extends WriteOptions, Retention {}

export interface RestoreSnapshotOptions extends WriteOptions {
  /** Restore into this new dataset; without it, over the dataset itself. */
  target?: string;
}

export interface WaitForOptions {
  /** Give up after this many milliseconds (120,000) with `WaitTimedOut`. */
  timeoutMs?: number;
  /** Poll every this many milliseconds (100). */
  everyMs?: number;
}

export interface CreateKeyOptions {
  /** Limit the key to these datasets. */
  datasets?: readonly string[];
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
type Params = Record<string, string>;

/**
 * A Tributary server over HTTP: `url` for everything, or, where the command and query APIs are served apart, `url`
 * for writes and key management and `readUrl` for reads.
 *
 * Writes answer at once with an operation (`wait: true` waits until it is applied); the client remembers each
 * dataset's latest consistency token and, unless told otherwise, reads that dataset at `session` consistency with
 * it, so a read sees the client's own writes. Requests that are safe to repeat (reads, and writes, which always
 * carry an Idempotency-Key) are retried on 429, 503 and connection errors with exponential backoff and full
 * jitter, honouring Retry-After.
 */
export class Tributary {
  readonly #writeUrl: string;
  readonly #readUrl: string;
  readonly #headers: Record<string, string>;
  readonly #retries: Required<Retries>;
  readonly #timeoutMs: number;
  readonly #readYourWrites: boolean;
  readonly #tokens = new Map<string, string>();

  constructor(options: TributaryOptions = {}) {
    const url = options.url ?? DEFAULT_URL;
    this.#writeUrl = url.replace(/\/+$/, "");
    this.#readUrl = (options.readUrl ?? url).replace(/\/+$/, "");
    this.#headers = { Accept: "application/json" };
    if (options.apiKey) this.#headers["Authorization"] = `Bearer ${options.apiKey}`;
    this.#retries = { ...DEFAULT_RETRIES, ...options.retries };
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#readYourWrites = options.readYourWrites ?? true;
  }

  // Datasets

  createDataset(name: string, dimensions: number, options: CreateDatasetOptions = {}): Promise<Accepted> {
    const body = {
      name,
      dimensions,
      metric: options.metric ?? "cosine",
      metadata_schema: options.metadata_schema ?? {},
      text_field: options.text_field ?? null,
      embedder: options.embedder ?? null,
      vectors: options.vectors ?? {},
    };
    return this.#write(name, "POST", "/api/v1/datasets", body, { wait: options.wait ?? true });
  }

  getDataset(name: string): Promise<DatasetView> {
    return this.#read("GET", `/api/v1/datasets/${enc(name)}`);
  }

  async listDatasets(): Promise<DatasetView[]> {
    return (await this.#read<{ datasets: DatasetView[] }>("GET", "/api/v1/datasets")).datasets;
  }

  deleteDataset(name: string, options: WriteOptions = {}): Promise<Accepted> {
    return this.#write(name, "DELETE", `/api/v1/datasets/${enc(name)}`, undefined, options);
  }

  // Writes

  /** Insert or replace records (`id`, `vector`, `text`, `metadata`, `vectors`, `images`); vectors travel packed. */
  upsert(dataset: string, records: readonly UpsertRecord[], options: UpsertOptions = {}): Promise<Accepted> {
    const body = { vectors: records.map(recordBody) };
    return this.#write(dataset, "POST", `/api/v1/datasets/${enc(dataset)}/vectors`, body, {
      wait: options.wait,
      key: options.idempotencyKey,
    });
  }

  /**
   * Stream any iterable (or async iterable) of records in batches, at most `inFlight` requests at a time. Each
   * batch's Idempotency-Key derives from `keyPrefix`, its index and its content: give the same prefix to resume an
   * interrupted ingest (with `firstBatch`, the index of the first batch `records` starts at) and the batches
   * already applied are answered, not applied again. Without a prefix the call makes a random one. A refused batch
   * throws `BatchFailed` once the batches already sent have finished; those before it count as acknowledged.
   */
  async upsertMany(
    dataset: string,
    records: Iterable<UpsertRecord> | AsyncIterable<UpsertRecord>,
    options: UpsertManyOptions = {},
  ): Promise<IngestReport> {
    const prefix = options.keyPrefix ?? crypto.randomUUID();
    const inFlight = Math.max(1, options.inFlight ?? 4);
    const path = `/api/v1/datasets/${enc(dataset)}/vectors`;
    const report: IngestReport = { records: 0, batches: [] };
    // Each request's outcome is held settled, so a batch that fails while an earlier one is awaited is not an
    // unhandled rejection.
    const pending: { first: number; size: number; outcome: Promise<Settled<Accepted>> }[] = [];

    let failedBatch = false;
    const acknowledge = async (): Promise<void> => {
      const { first, size, outcome } = pending.shift()!;
      const settled = await outcome;
      if (!settled.ok) {
        failedBatch = true;
        throw settled.error instanceof ApiError ? new BatchFailed(first, settled.error) : settled.error;
      }
      report.batches.push(settled.value);
      options.onBatch?.(size, settled.value);
    };

    try {
      let index = options.firstBatch ?? 0;
      for await (const batch of batches(records, options.batchSize ?? 1000)) {
        const bodies = batch.map(recordBody);
        const key = await batchKey(prefix, index, bodies);
        const write = this.#write(dataset, "POST", path, { vectors: bodies }, { wait: options.wait, key });
        pending.push({ first: report.records, size: batch.length, outcome: settle(write) });
        report.records += batch.length;
        index += 1;
        if (pending.length >= inFlight) await acknowledge();
      }
      while (pending.length > 0) await acknowledge();
    } catch (error) {
      // The batches already sent finish. When the stream failed (a bad record, a throwing iterator), they all
      // come before the failure and count as acknowledged, in order; when a batch failed, those still pending
      // come after it and do not: what the report (and `onBatch`) says was written is a prefix of the stream.
      try {
        while (pending.length > 0 && !failedBatch) await acknowledge();
      } catch {
        // the first failure is the one thrown
      }
      await Promise.all(pending.map(({ outcome }) => outcome));
      throw error;
    }
    return report;
  }

  /** Delete by `ids`, or every vector whose metadata matches `filter`. */
  delete(dataset: string, options: DeleteOptions): Promise<Accepted> {
    const body = options.ids !== undefined ? { ids: [...options.ids] } : { filter: options.filter ?? {} };
    return this.#write(dataset, "POST", `/api/v1/datasets/${enc(dataset)}/vectors/delete`, body, options);
  }

  updateMetadata(
    dataset: string,
    vectorId: string,
    metadata: Record<string, unknown>,
    options: UpdateMetadataOptions = {},
  ): Promise<Accepted> {
    const body = { metadata, merge: options.merge ?? true };
    return this.#write(dataset, "PATCH", `/api/v1/datasets/${enc(dataset)}/vectors/${enc(vectorId)}`, body, options);
  }

  // Reads

  /** Vector, text or hybrid search; `offset` and the answer's `next_offset` page through the results. */
  search(dataset: string, query: SearchQuery, options: ReadOptions = {}): Promise<SearchResponse> {
    const params = this.#consistency(dataset, options);
    return this.#read("POST", `/api/v1/datasets/${enc(dataset)}/search`, searchBody(query), params);
  }

  /** Several searches at one consistency wait. */
  searchBatch(
    dataset: string,
    searches: readonly SearchQuery[],
    options: ReadOptions = {},
  ): Promise<SearchBatchResponse> {
    const body = { searches: searches.map(searchBody) };
    const params = this.#consistency(dataset, options);
    return this.#read("POST", `/api/v1/datasets/${enc(dataset)}/search/batch`, body, params);
  }

  /** The vectors of these ids that exist, in the order asked. */
  async get(dataset: string, ids: readonly string[], options: GetOptions = {}): Promise<VectorView[]> {
    const body = { ids: [...ids], include: options.include ?? ["vector", "metadata", "text"] };
    const params = this.#consistency(dataset, options);
    const answer = await this.#read<VectorsResponse>(
      "POST",
      `/api/v1/datasets/${enc(dataset)}/vectors/get`,
      body,
      params,
    );
    return answer.results;
  }

  /** Every vector (matching `filter`), page by page, to the end. */
  async *scroll(dataset: string, options: ScrollOptions = {}): AsyncGenerator<VectorView, void, undefined> {
    const params = this.#consistency(dataset, options);
    let cursor: string | undefined;
    for (;;) {
      const body: Record<string, unknown> = { limit: options.pageSize ?? 1000 };
      if (options.filter !== undefined) body["filter"] = options.filter;
      if (options.include !== undefined) body["include"] = options.include;
      if (cursor !== undefined) body["cursor"] = cursor;
      const page = await this.#read<ScrollResponse>("POST", `/api/v1/datasets/${enc(dataset)}/scroll`, body, params);
      yield* page.results;
      if (page.next_cursor == null) return;
      cursor = page.next_cursor;
    }
  }

  async count(dataset: string, options: CountOptions = {}): Promise<number> {
    const body = options.filter !== undefined ? { filter: options.filter } : {};
    const params = this.#consistency(dataset, options);
    return (await this.#read<CountResponse>("POST", `/api/v1/datasets/${enc(dataset)}/count`, body, params)).count;
  }

  /** The dataset's history, oldest first: each version a read's `version` may name. */
  async versions(dataset: string): Promise<DatasetVersionView[]> {
    const path = `/api/v1/datasets/${enc(dataset)}/versions`;
    return (await this.#read<{ versions: DatasetVersionView[] }>("GET", path)).versions;
  }

  // Snapshots

  /**
   * Snapshot the dataset as it is after the writes before this call; its id is the answer's `operation_id`. Then
   * keep at most `keep_last` of the dataset's snapshots and none older than `max_age_days`, when given.
   */
  createSnapshot(dataset: string, options: CreateSnapshotOptions = {}): Promise<Accepted> {
    const body = retention(options);
    return this.#write(dataset, "POST", `/api/v1/datasets/${enc(dataset)}/snapshots`, body, options);
  }

  /** The dataset's snapshots, oldest first (a deleted dataset's too, so it can be restored). */
  async listSnapshots(dataset: string): Promise<SnapshotView[]> {
    const path = `/api/v1/datasets/${enc(dataset)}/snapshots`;
    return (await this.#read<{ snapshots: SnapshotView[] }>("GET", path)).snapshots;
  }

  getSnapshot(dataset: string, snapshotId: string): Promise<SnapshotView> {
    return this.#read("GET", `/api/v1/datasets/${enc(dataset)}/snapshots/${enc(snapshotId)}`);
  }

  deleteSnapshot(dataset: string, snapshotId: string, options: WriteOptions = {}): Promise<Accepted> {
    const path = `/api/v1/datasets/${enc(dataset)}/snapshots/${enc(snapshotId)}`;
    return this.#write(dataset, "DELETE", path, undefined, options);
  }

  /** Restore the snapshot over the dataset, or into `target`, a new dataset; reads of the dataset written see it. */
  restoreSnapshot(dataset: string, snapshotId: string, options: RestoreSnapshotOptions = {}): Promise<Accepted> {
    const path = `/api/v1/datasets/${enc(dataset)}/snapshots/${enc(snapshotId)}/restore`;
    const query = options.target !== undefined ? { target: options.target } : undefined;
    return this.#write(options.target ?? dataset, "POST", path, undefined, { wait: options.wait, query });
  }

  /** The dataset's snapshot schedule; `NotFound` when it has none. */
  getSnapshotSchedule(dataset: string): Promise<SnapshotScheduleView> {
    return this.#read("GET", `/api/v1/datasets/${enc(dataset)}/snapshot-schedule`);
  }

  /**
   * Snapshot the dataset every `every_s` seconds (the first `every_s` from now), with the retention applied after
   * each; replaces the dataset's schedule. Not an operation: it holds once answered.
   */
  setSnapshotSchedule(dataset: string, schedule: SnapshotSchedule): Promise<SnapshotScheduleView> {
    const body = { every_s: schedule.every_s, ...retention(schedule) };
    const url = `${this.#writeUrl}/api/v1/datasets/${enc(dataset)}/snapshot-schedule`;
    return this.#send("PUT", url, body, { repeatable: true });
  }

  async deleteSnapshotSchedule(dataset: string): Promise<void> {
    const url = `${this.#writeUrl}/api/v1/datasets/${enc(dataset)}/snapshot-schedule`;
    await this.#send("DELETE", url, undefined, { repeatable: true });
  }

  // Operations and keys

  operation(operationId: string): Promise<OperationView> {
    return this.#read("GET", `/api/v1/operations/${enc(operationId)}`);
  }

  /** Poll an operation until it is no longer `accepted`. */
  async waitFor(operation: Accepted | string, options: WaitForOptions = {}): Promise<OperationView> {
    const id = typeof operation === "string" ? operation : operation.operation_id;
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    for (;;) {
      const view = await this.operation(id);
      if (view.status !== "accepted") return view;
      if (Date.now() >= deadline)
        throw new WaitTimedOut(`operation ${id} still accepted after ${options.timeoutMs ?? 120_000} ms`);
      await sleep(options.everyMs ?? 100);
    }
  }

  /** A new API key (shown this once). Not retried once sent: a repeat would make a second key. */
  async createKey(tenant: string, roles: readonly string[], options: CreateKeyOptions = {}): Promise<CreatedKey> {
    const body = { tenant, roles: [...roles], datasets: options.datasets ? [...options.datasets] : null };
    return this.#send<CreatedKey>("POST", `${this.#writeUrl}/api/v1/admin/keys`, body, { repeatable: false });
  }

  async listKeys(options: { tenant?: string } = {}): Promise<KeyView[]> {
    const params = options.tenant ? { tenant: options.tenant } : undefined;
    const answer = await this.#send<{ keys: KeyView[] }>("GET", `${this.#writeUrl}/api/v1/admin/keys`, undefined, {
      repeatable: true,
      params,
    });
    return answer.keys;
  }

  async revokeKey(keyId: string): Promise<void> {
    await this.#send("DELETE", `${this.#writeUrl}/api/v1/admin/keys/${enc(keyId)}`, undefined, { repeatable: true });
  }

  /** The consistency token of the last write this client made to `dataset`. */
  lastToken(dataset: string): string | undefined {
    return this.#tokens.get(dataset);
  }

  // Transport

  /**
   * The query of a read: at a past version (what it holds is fixed: no level or remembered token applies; one given
   * is sent, for the server to refuse), or at the consistency asked (by default, session with the last token).
   */
  #consistency(dataset: string, options: ReadOptions): Params {
    if (options.version !== undefined) {
      const given: Params = { version: options.version };
      if (options.consistency !== undefined) given["consistency"] = options.consistency;
      if (options.token !== undefined) given["token"] = options.token;
      return given;
    }
    const token = options.token ?? (this.#readYourWrites ? this.#tokens.get(dataset) : undefined);
    const consistency = options.consistency ?? (token ? "session" : undefined);
    const params: Params = {};
    if (consistency !== undefined) params["consistency"] = consistency;
    if (consistency === "session" && token) params["token"] = token;
    return params;
  }

  async #write(
    dataset: string,
    method: Method,
    path: string,
    body: unknown,
    options: { wait?: boolean | undefined; key?: string | undefined; query?: Params | undefined },
  ): Promise<Accepted> {
    const headers = { "Idempotency-Key": options.key ?? `sdk-${crypto.randomUUID().replaceAll("-", "")}` };
    const params: Params = { ...options.query, ...(options.wait ? { wait: "true" } : {}) };
    const accepted = await this.#send<Accepted>(method, this.#writeUrl + path, body, {
      repeatable: true,
      params,
      headers,
    });
    this.#remember(dataset, accepted.consistency_token);
    return accepted;
  }

  #remember(dataset: string, token: string): void {
    const known = this.#tokens.get(dataset);
    if (known === undefined || comparePositions(token, known) >= 0) this.#tokens.set(dataset, token);
  }

  #read<T>(method: Method, path: string, body?: unknown, params?: Params): Promise<T> {
    return this.#send<T>(method, this.#readUrl + path, body, { repeatable: true, params });
  }

  /**
   * One request with its retries. A request that is not `repeatable` is retried only where the server surely did
   * not act on it: a connection that was never made, or a 429 (rate limits are checked before anything).
   */
  async #send<T>(
    method: Method,
    url: string,
    body: unknown,
    options: { repeatable: boolean; params?: Params | undefined; headers?: Record<string, string> },
  ): Promise<T> {
    const target = new URL(url);
    for (const [name, value] of Object.entries(options.params ?? {})) target.searchParams.set(name, value);
    const headers: Record<string, string> = { ...this.#headers, ...options.headers };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const attempts = Math.max(1, this.#retries.attempts);
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      let text: string;
      try {
        response = await fetch(target, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
        text = await response.text();
      } catch (error) {
        if (attempt >= attempts || !(options.repeatable || neverConnected(error))) {
          const Kind = isTimeout(error) ? RequestTimeout : TransportError;
          throw new Kind(`${method} ${target}: ${describe(error)}`, [], undefined, { cause: error });
        }
        await sleep(retryDelay(this.#retries, attempt));
        continue;
      }
      if (response.ok) return (text ? JSON.parse(text) : undefined) as T;
      const wait = retryAfter(response.headers.get("retry-after"));
      const retry = RETRY_STATUSES.has(response.status) && (options.repeatable || response.status === 429);
      if (!retry || attempt >= attempts) throw apiError(response.status, parseJson(text), wait);
      await sleep(retryDelay(this.#retries, attempt, wait));
    }
  }
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function searchBody(query: SearchQuery): Record<string, unknown> {
  const { vector, image: given, k, offset, queries, ...rest } = query;
  const body: Record<string, unknown> = { k: k ?? 10, offset: offset ?? 0 };
  for (const [name, value] of Object.entries(rest)) {
    if (value !== undefined) body[name] = value;
  }
  if (vector !== undefined) body["vector"] = pack(vector);
  if (given !== undefined) body["image"] = image(given);
  if (queries !== undefined) {
    body["queries"] = queries.map(({ vector: packed, image: picture, ...input }) => ({
      ...input,
      ...(packed === undefined ? {} : { vector: pack(packed) }),
      ...(picture === undefined ? {} : { image: image(picture) }),
    }));
  }
  return body;
}

/** The retention fields of a snapshot or a schedule: those given. */
function retention(given: Retention): Retention {
  const fields: Retention = {};
  if (given.keep_last != null) fields.keep_last = given.keep_last;
  if (given.max_age_days != null) fields.max_age_days = given.max_age_days;
  return fields;
}

/** Tokens are `<partition>:<offset>`; a later write has the larger position. */
function comparePositions(a: string, b: string): number {
  const [pa, oa] = position(a);
  const [pb, ob] = position(b);
  return pa !== pb ? pa - pb : oa - ob;
}

function position(token: string): [number, number] {
  const [partition, offset] = token.split(":", 2).map(Number);
  return Number.isInteger(partition) && Number.isInteger(offset) ? [partition!, offset!] : [-1, -1];
}

// Connection errors that mean the request never reached the server (fetch wraps them in a TypeError's cause).
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function neverConnected(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  return typeof cause?.code === "string" && NOT_CONNECTED.has(cause.code);
}

function isTimeout(error: unknown): boolean {
  return error instanceof DOMException && error.name === "TimeoutError";
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.name}: ${error.message}${cause}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
