/**
 * Every answer the server refuses becomes one of these: a typed error carrying the status, the reason, and for a
 * bad record its index and field.
 *
 * The server answers every error as `{"detail": [{"type", "loc", "msg"}]}`; `loc` is where in the request the
 * problem is, e.g. `["body", "vectors", 3, "vector"]` for the vector of the fourth record.
 */

/** One thing wrong with a request. */
export class Problem {
  constructor(
    readonly type: string,
    readonly loc: readonly (string | number)[],
    readonly msg: string,
  ) {}

  /** The index of the record (or query, or id) the problem is in, when it is in one. */
  get index(): number | undefined {
    return this.loc.find((part): part is number => typeof part === "number");
  }

  /** The innermost named field of the problem's location, when it has one. */
  get field(): string | undefined {
    return [...this.loc].reverse().find((part): part is string => typeof part === "string" && part !== "body");
  }
}

/** The server refused the request, or could not be reached. */
export class TributaryError extends Error {
  readonly status: number | undefined;
  readonly problems: readonly Problem[];

  constructor(reason: string, problems: readonly Problem[] = [], status?: number, options?: ErrorOptions) {
    super(reason, options);
    this.name = new.target.name;
    this.problems = problems;
    this.status = status;
  }

  get reason(): string {
    return this.message;
  }
}

/** The server could not be reached, or the connection dropped before an answer (after the retries). */
export class TransportError extends TributaryError {}

/** No answer within the client's `timeoutMs` (after the retries). */
export class RequestTimeout extends TransportError {}

/** `waitFor` gave up: the operation was still `accepted` after its `timeoutMs`. */
export class WaitTimedOut extends TributaryError {}

/** An HTTP answer with an error status. */
export class ApiError extends TributaryError {
  declare readonly status: number;
  /** Seconds the server asked to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;

  constructor(status: number, reason: string, problems: readonly Problem[] = [], retryAfter?: number) {
    super(reason, problems, status);
    this.retryAfter = retryAfter;
  }

  /** For a bad record: its index in the request (of the first problem). */
  get index(): number | undefined {
    return this.problems[0]?.index;
  }

  /** For a bad record: the field at fault (of the first problem). */
  get field(): string | undefined {
    return this.problems[0]?.field;
  }

  override toString(): string {
    return `${this.name}: ${this.status}: ${this.message}`;
  }
}

/** 400. */
export class BadRequest extends ApiError {}
/** 401: no credential, or one the server does not accept. */
export class Unauthorized extends ApiError {}
/** 403: the credential may not do this. */
export class Forbidden extends ApiError {}
/** 404: no such dataset, vector, operation or key (or one of another tenant). */
export class NotFound extends ApiError {}
/** 409. */
export class Conflict extends ApiError {}
/** 413: split the request. */
export class PayloadTooLarge extends ApiError {}
/** 422: `problems` names each bad field; for a bad record, `index` and `field`. */
export class InvalidRequest extends ApiError {}
/** 429: `retryAfter` says when to come back (after the client's own retries). */
export class RateLimited extends ApiError {}
/** 503: a dependency of the server is down; retried by the client, thrown once the retries are spent. */
export class Unavailable extends ApiError {}
/** 504: the replica did not reach the read's consistency in time. */
export class ReadTimedOut extends ApiError {}
/** Another 5xx. */
export class ServerError extends ApiError {}

/** A batch of `upsertMany` was refused; the batches before it were acknowledged, none after it was. */
export class BatchFailed extends TributaryError {
  constructor(
    /** The position in the stream of the batch's first record. */
    readonly firstRecord: number,
    readonly error: ApiError,
  ) {
    super(error.message, error.problems, error.status, { cause: error });
  }

  /** The position in the stream of the record at fault, when the server named one. */
  get record(): number | undefined {
    const index = this.error.index;
    return index === undefined ? undefined : this.firstRecord + index;
  }
}

const BY_STATUS: Record<number, typeof ApiError> = {
  400: BadRequest,
  401: Unauthorized,
  403: Forbidden,
  404: NotFound,
  409: Conflict,
  413: PayloadTooLarge,
  422: InvalidRequest,
  429: RateLimited,
  503: Unavailable,
  504: ReadTimedOut,
};

/** The error for an answer with this status and (decoded JSON, or undefined) body. */
export function apiError(status: number, body: unknown, retryAfter?: number): ApiError {
  const detail = isObject(body) ? body["detail"] : undefined;
  let problems: Problem[] = [];
  let reason: string;
  if (Array.isArray(detail)) {
    problems = detail
      .filter(isObject)
      .map(
        (p) =>
          new Problem(
            String(p["type"] ?? ""),
            Array.isArray(p["loc"])
              ? p["loc"].filter((part) => typeof part === "string" || typeof part === "number")
              : [],
            String(p["msg"] ?? ""),
          ),
      );
    reason = problems
      .map((p) => {
        const where = p.loc.filter((part) => part !== "body").join("/");
        return where ? `${where}: ${p.msg}` : p.msg;
      })
      .join("; ");
  } else {
    reason = detail !== undefined && detail !== null ? String(detail) : "";
  }
  const Kind = BY_STATUS[status] ?? (status >= 500 ? ServerError : ApiError);
  return new Kind(status, reason || `HTTP ${status}`, problems, retryAfter);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
