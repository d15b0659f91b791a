/**
 * The server's answers, as its OpenAPI document (`clients/python/openapi.json`) describes them. Fields keep the
 * server's names.
 */

export type Consistency = "eventual" | "bounded" | "session" | "strong";
export type Metric = "cosine" | "dot" | "l2";
export type FieldType = "string" | "integer" | "number" | "boolean" | "string_list";
export type Include = "vector" | "vectors" | "metadata" | "text" | "images";
export type Filter = Record<string, unknown>;

/** A write was taken: its operation, and the token a `session` read waits for. */
export interface Accepted {
  operation_id: string;
  consistency_token: string;
  status: string;
  ids?: string[] | null;
  reason?: string | null;
  rejection?: "not_found" | "conflict" | "invalid" | null;
}

export interface DatasetView {
  name: string;
  dimensions: number;
  metric: string;
  metadata_schema: Record<string, string>;
  text_field: string | null;
  embedder: Record<string, unknown> | null;
  /** The named vector fields beside the default vector. */
  vectors: Record<string, Record<string, unknown>>;
  status: string;
  version: string;
  vector_count: number;
  created_at: string;
  updated_at: string;
}

export interface VectorView {
  id: string;
  score?: number | null;
  vector?: number[] | null;
  /** The named vector fields the record carries (include "vectors"). */
  vectors?: Record<string, number[]> | null;
  /** The images the record carries, by image field, in base64 (include "images"). */
  images?: Record<string, string> | null;
  metadata?: Record<string, unknown> | null;
  text?: string | null;
}

/** What every read says of the replica that answered it. */
export interface ReadAnswer {
  consistency: string;
  version: string;
  /** Event-log positions applied by this replica. */
  reflects: Record<string, number>;
}

export interface SearchPage {
  results: VectorView[];
  /** The `offset` of the next page, or null at the end. */
  next_offset?: number | null;
}

export interface SearchResponse extends ReadAnswer, SearchPage {}

export interface SearchBatchResponse extends ReadAnswer {
  /** One page per search, in the order asked. */
  answers: SearchPage[];
}

export interface VectorsResponse extends ReadAnswer {
  results: VectorView[];
}

export interface ScrollResponse extends ReadAnswer {
  results: VectorView[];
  next_cursor?: string | null;
}

export interface CountResponse extends ReadAnswer {
  count: number;
}

export interface OperationView {
  id: string;
  dataset: string;
  command_type: string;
  /** `accepted` until applied; then `applied` or `rejected`. */
  status: string;
  reason: string | null;
  rejection: "not_found" | "conflict" | "invalid" | null;
  consistency_token: string | null;
  created_at: string;
  updated_at: string;
}

/** A new API key: `key` is shown this once. */
export interface CreatedKey {
  id: string;
  key: string;
}

export interface KeyView {
  id: string;
  prefix: string;
  tenant: string;
  roles: string[];
  datasets: string[] | null;
  created_at: string;
  revoked_at: string | null;
}

/** One commit of a dataset's history. */
export interface DatasetVersionView {
  /** The DeepLake version id: a read's `version` answers from it. */
  version: string;
  /** When it was committed (to the second). */
  time: string;
  /** Its tags: a snapshot's is `snapshot-<id>`. */
  tags: string[];
  /** The operations it applied (none for the dataset's first two commits). */
  operations: string[];
}

/** What to keep of a dataset's snapshots after taking one: at most `keep_last`, none older than `max_age_days`. */
export interface Retention {
  keep_last?: number | null;
  max_age_days?: number | null;
}

export interface SnapshotView {
  /** The operation id of the request that made it. */
  snapshot_id: string;
  dataset: string;
  /** The DeepLake version it holds (tagged `snapshot-<id>` in the dataset). */
  version: string;
  vector_count: number;
  dimensions: number;
  metric: Metric;
  created_at: string;
  size_bytes: number;
  encrypted: boolean;
}

/** A dataset's snapshots taken every `every_s` seconds, with the retention applied after each. */
export interface SnapshotSchedule extends Retention {
  every_s: number;
}

export interface SnapshotScheduleView extends SnapshotSchedule {
  dataset: string;
  /** When the next scheduled snapshot is taken. */
  next_at: string;
}
