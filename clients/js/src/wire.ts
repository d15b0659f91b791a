/** What travels: packed vectors, records, idempotency keys, and when to retry. No I/O here. */

/** A vector: an array of numbers, or a Float32Array (sent as it is), or any other typed array of numbers. */
export type Vector = readonly number[] | Float32Array | Float64Array;

/** One record of an upsert. */
export interface UpsertRecord {
  id: string;
  vector?: Vector | null;
  text?: string | null;
  metadata?: Record<string, unknown> | null;
  /** The record's vectors of the dataset's named vector fields, by field. */
  vectors?: Record<string, Vector> | null;
  /** The record's images of the dataset's image fields, by field: PNG or JPEG bytes, or a URL the server fetches. */
  images?: Record<string, ImageInput> | null;
}

/** An image: its bytes (PNG or JPEG), or a URL under an image source the server's operator listed. */
export type ImageInput = Uint8Array | string;

/** A record as the server takes it: the vectors packed, the images' bytes in base64. */
export interface RecordBody {
  id: string;
  vector?: string;
  text?: string;
  metadata?: Record<string, unknown>;
  vectors?: Record<string, string>;
  images?: Record<string, string>;
}

/**
 * A vector as its little-endian float32 bytes in base64: about 4x smaller than JSON numbers and much cheaper for
 * the server to parse.
 */
export function pack(vector: Vector): string {
  const bytes = new Uint8Array(vector.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < vector.length; i++) {
    view.setFloat32(i * 4, vector[i] as number, true);
  }
  return base64(bytes);
}

/** The float32 values of a packed vector (the inverse of `pack`). */
export function unpack(packed: string): Float32Array {
  const binary = atob(packed);
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) {
    view.setUint8(i, binary.charCodeAt(i));
  }
  const values = new Float32Array(binary.length / 4);
  for (let i = 0; i < values.length; i++) {
    values[i] = view.getFloat32(i * 4, true);
  }
  return values;
}

/** An image as the server takes it: its bytes in base64, or a URL as it is. */
export function image(given: ImageInput): string {
  return typeof given === "string" ? given : base64(given);
}

// btoa takes a binary string; building it in chunks keeps the argument list of fromCharCode bounded.
function base64(bytes: Uint8Array): string {
  const chunk = 0x8000;
  let binary = "";
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

const RECORD_FIELDS = new Set(["id", "vector", "text", "metadata", "vectors", "images"]);

/**
 * One record of an upsert as the server takes it: `id`, `vector` (packed), `text`, `metadata`, `vectors` (packed),
 * `images` (base64 bytes or URLs).
 */
export function recordBody(record: UpsertRecord): RecordBody {
  const unknown = Object.keys(record).filter((name) => !RECORD_FIELDS.has(name));
  if (unknown.length > 0) {
    throw new TypeError(
      `a record has id, vector, text, metadata, vectors and images; not ${unknown.sort().join(", ")}`,
    );
  }
  const body: RecordBody = { id: record.id };
  if (record.vector != null) body.vector = pack(record.vector);
  if (record.text != null) body.text = record.text;
  if (record.metadata != null) body.metadata = record.metadata;
  if (record.vectors != null) {
    body.vectors = Object.fromEntries(Object.entries(record.vectors).map(([field, v]) => [field, pack(v)]));
  }
  if (record.images != null) {
    body.images = Object.fromEntries(Object.entries(record.images).map(([field, given]) => [field, image(given)]));
  }
  return body;
}

/**
 * An Idempotency-Key derived from a batch: the same batch of the same stream always gets the same key, so a batch
 * sent again (a retry, or a resumed ingest with the same prefix) is applied once. The content is hashed as JSON
 * with sorted keys, so the order of a record's fields does not change it.
 */
export async function batchKey(prefix: string, index: number, records: readonly RecordBody[]): Promise<string> {
  const text = `${prefix}\0${index}\0${canonicalJson(records)}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const hex = Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `batch-${hex.slice(0, 48)}`;
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, item: unknown) =>
    typeof item === "object" && item !== null && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

/** Batches of `size` items from any iterable, sync or async. */
export async function* batches<T>(items: Iterable<T> | AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batchSize must be a positive integer, not ${size}`);
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

export const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** Exponential backoff with full jitter, honouring the server's Retry-After, bounded in attempts. */
export interface Retries {
  /** Attempts in all, the first included (6). */
  attempts?: number;
  /** The first backoff's ceiling in milliseconds (250); it doubles per attempt. */
  baseMs?: number;
  /** The largest backoff in milliseconds (20,000). */
  capMs?: number;
}

export const DEFAULT_RETRIES: Required<Retries> = { attempts: 6, baseMs: 250, capMs: 20_000 };

/** Milliseconds to wait before attempt `attempt + 1` (attempt counts from 1). */
export function retryDelay(retries: Required<Retries>, attempt: number, retryAfterS?: number): number {
  const backoff = Math.random() * Math.min(retries.capMs, retries.baseMs * 2 ** (attempt - 1));
  return Math.max(backoff, (retryAfterS ?? 0) * 1000);
}

/** The Retry-After header in seconds: a number of seconds or an HTTP date. */
export function retryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value.trim());
  if (value.trim() !== "" && Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}
