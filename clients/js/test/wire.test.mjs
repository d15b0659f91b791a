// What travels, without a server: packed vectors, batch keys, Retry-After, and the errors of the server's shape.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, InvalidRequest, NotFound, ServerError, Unavailable, pack, unpack } from "../dist/index.js";
import { apiError } from "../dist/errors.js";
import { batchKey, recordBody, retryAfter, retryDelay } from "../dist/wire.js";

test("a vector is its little-endian float32 bytes in base64, from numbers or a Float32Array", () => {
  const values = [0.5, -1, 3.25, 1e-3];
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  assert.equal(pack(values), bytes.toString("base64"));
  assert.equal(pack(Float32Array.from(values)), bytes.toString("base64"));
  assert.deepEqual(unpack(pack(values)), Float32Array.from(values));
});

test("a record takes id, vector, text, metadata and named vectors only", () => {
  assert.deepEqual(recordBody({ id: "a", vector: [1], text: null }), { id: "a", vector: pack([1]) });
  assert.deepEqual(recordBody({ id: "a", vectors: { image: [1, 2] } }), { id: "a", vectors: { image: pack([1, 2]) } });
  assert.throws(() => recordBody({ id: "a", embedding: [1] }), /not embedding/);
});

test("a record's images travel as base64 bytes, or as the URL given", () => {
  const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 255]);
  assert.deepEqual(recordBody({ id: "a", images: { image: png, photo: "https://x.example/p.jpg" } }), {
    id: "a",
    images: { image: Buffer.from(png).toString("base64"), photo: "https://x.example/p.jpg" },
  });
});

test("a batch's key follows its prefix, index and content, not the order of its fields", async () => {
  const batch = [{ id: "a", metadata: { x: 1, y: 2 } }];
  const key = await batchKey("p", 0, batch);
  assert.match(key, /^batch-[0-9a-f]{48}$/);
  assert.equal(await batchKey("p", 0, [{ metadata: { y: 2, x: 1 }, id: "a" }]), key);
  assert.notEqual(await batchKey("q", 0, batch), key);
  assert.notEqual(await batchKey("p", 1, batch), key);
  assert.notEqual(await batchKey("p", 0, [{ id: "b", metadata: { x: 1, y: 2 } }]), key);
});

test("Retry-After is seconds or an HTTP date, and the backoff waits at least that long", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfter("3", now), 3);
  assert.equal(retryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5);
  assert.equal(retryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(retryAfter("soon", now), undefined);
  assert.equal(retryAfter(null, now), undefined);
  const retries = { attempts: 6, baseMs: 100, capMs: 1_000 };
  for (let attempt = 1; attempt <= 8; attempt++) {
    const delay = retryDelay(retries, attempt);
    assert.ok(delay >= 0 && delay <= Math.min(1_000, 100 * 2 ** (attempt - 1)));
    assert.ok(retryDelay(retries, attempt, 2) >= 2_000);
  }
});

test("an error answer becomes the error of its status, with its problems", () => {
  const body = {
    detail: [{ type: "value_error", loc: ["body", "vectors", 3, "vector"], msg: "expected 8 dimensions, got 2" }],
  };
  const error = apiError(422, body);
  assert.ok(error instanceof InvalidRequest && error instanceof ApiError);
  assert.equal(error.name, "InvalidRequest");
  assert.equal(error.index, 3);
  assert.equal(error.field, "vector");
  assert.equal(error.reason, "vectors/3/vector: expected 8 dimensions, got 2");
  assert.ok(apiError(404, { detail: [{ type: "not_found", loc: [], msg: "no dataset x" }] }) instanceof NotFound);
  const unavailable = apiError(503, undefined, 7);
  assert.ok(unavailable instanceof Unavailable);
  assert.equal(unavailable.retryAfter, 7);
  assert.equal(unavailable.reason, "HTTP 503");
  assert.ok(apiError(502, { detail: "bad gateway" }) instanceof ServerError);
});
