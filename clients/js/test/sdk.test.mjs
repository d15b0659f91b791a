// The TypeScript SDK against a real embedded server, started here.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { deflateSync } from "node:zlib";

import {
  BatchFailed,
  Conflict,
  InvalidRequest,
  NotFound,
  RateLimited,
  RequestTimeout,
  TransportError,
  Tributary,
  Unauthorized,
  Unavailable,
} from "../dist/index.js";
import { faultyProxy } from "./proxy.mjs";
import { startServer } from "./server.mjs";

const DIMENSIONS = 8;
let server;
let client;

before(async () => {
  server = await startServer();
  client = new Tributary({ url: server.url, apiKey: server.key });
});

after(async () => {
  await server?.stop();
});

// Deterministic vectors, distinct per record (so searches have no ties): a small PRNG seeded with the index.
function vectorOf(i) {
  let state = (i + 1) * 2654435761;
  return Float32Array.from({ length: DIMENSIONS }, () => {
    state = (Math.imul(state ^ (state >>> 15), 2246822507) + 0x6d2b79f5) >>> 0;
    return state / 2 ** 32;
  });
}

function* records(count, start = 0) {
  for (let i = start; i < start + count; i++) {
    const vector = vectorOf(i);
    yield { id: `r${i}`, vector, metadata: { n: i } };
  }
}

test("batches stream in packed and a session read sees them", async () => {
  await client.createDataset("batches", DIMENSIONS, { metadata_schema: { n: "integer" } });
  const acknowledged = [];
  const report = await client.upsertMany("batches", records(3_500), {
    batchSize: 1_000,
    inFlight: 2,
    onBatch: (size) => acknowledged.push(size),
  });
  assert.equal(report.records, 3_500);
  assert.equal(report.batches.length, 4);
  assert.deepEqual(acknowledged, [1_000, 1_000, 1_000, 500]);
  // No wait: the client carries the last write's token and reads at session consistency.
  // Batches in flight together may be applied in either order: the client keeps the latest position.
  const offsets = report.batches.map((answer) => Number(answer.consistency_token.split(":")[1]));
  assert.equal(Number(client.lastToken("batches").split(":")[1]), Math.max(...offsets));
  assert.equal(await client.count("batches"), 3_500);
  assert.equal(await client.count("batches", { filter: { n: { $lt: 100 } } }), 100);
  const found = await client.get("batches", ["r7", "missing"]);
  assert.deepEqual(
    found.map((view) => view.id),
    ["r7"],
  );
  assert.deepEqual(Float32Array.from(found[0].vector), vectorOf(7));
});

test("a session read sees the previous write of each kind", async () => {
  await client.createDataset("session", DIMENSIONS, { metadata_schema: { n: "integer", tag: "string" } });
  await client.upsert("session", [...records(20)]);
  assert.equal(await client.count("session"), 20);
  await client.delete("session", { ids: ["r0", "r1"] });
  assert.equal(await client.count("session"), 18);
  await client.updateMetadata("session", "r5", { tag: "seen" });
  const [view] = await client.get("session", ["r5"]);
  assert.deepEqual(view.metadata, { n: 5, tag: "seen" });
  await client.delete("session", { filter: { n: { $gte: 10 } } });
  assert.equal(await client.count("session"), 8);
  const names = (await client.listDatasets()).map((dataset) => dataset.name);
  assert.ok(names.includes("session"));
  assert.equal((await client.getDataset("session")).dimensions, DIMENSIONS);
});

test("a refused batch of upsertMany names the record at fault; the batches before it were acknowledged", async () => {
  await client.createDataset("refused", DIMENSIONS);
  function* stream() {
    yield* records(250);
    yield { id: "short", vector: [0.5] }; // record 250: the third batch's first
    yield* records(100, 251);
  }
  const acknowledged = [];
  const failure = await client
    .upsertMany("refused", stream(), {
      batchSize: 100,
      inFlight: 2,
      wait: true,
      onBatch: (size) => acknowledged.push(size),
    })
    .then(
      () => assert.fail("a short vector was taken"),
      (error) => error,
    );
  assert.ok(failure instanceof BatchFailed);
  assert.equal(failure.status, 422);
  assert.equal(failure.firstRecord, 200);
  assert.equal(failure.record, 250);
  assert.equal(failure.error.field, "vector");
  // The last batch was in flight with the refused one: it may be stored, but it is not acknowledged, so what
  // onBatch saw is a prefix of the stream (a resumed ingest starts from record 200 and resends it with its key).
  assert.deepEqual(acknowledged, [100, 100]);
  const stored = await client.count("refused", { consistency: "strong" });
  assert.ok(stored === 200 || stored === 251, `${stored} records stored`);
});

test("a bad record in the stream stops upsertMany after acknowledging the batches sent before it", async () => {
  await client.createDataset("stopped", DIMENSIONS);
  function* stream() {
    yield* records(250);
    yield { id: "odd", embedding: [0.5] }; // not a record: refused by the client, before it is sent
  }
  const acknowledged = [];
  const options = { batchSize: 100, inFlight: 3, wait: true, onBatch: (size) => acknowledged.push(size) };
  await assert.rejects(client.upsertMany("stopped", stream(), options), TypeError);
  assert.deepEqual(acknowledged, [100, 100]);
  assert.equal(await client.count("stopped"), 200);
});

test("paging to the end: scroll, and search offsets", async () => {
  await client.createDataset("paging", DIMENSIONS, { metadata_schema: { n: "integer" } });
  await client.upsertMany("paging", records(1_234), { batchSize: 500, wait: true });
  const seen = [];
  for await (const view of client.scroll("paging", { pageSize: 100 })) seen.push(view.id);
  assert.equal(seen.length, 1_234);
  assert.equal(new Set(seen).size, 1_234);
  const query = new Float32Array(DIMENSIONS).fill(1);
  const pages = [];
  let offset = 0;
  for (;;) {
    const page = await client.search("paging", { vector: query, k: 50, offset });
    pages.push(...page.results.map((view) => view.id));
    if (page.next_offset == null || pages.length >= 300) break;
    offset = page.next_offset;
  }
  assert.equal(pages.length, 300);
  assert.equal(new Set(pages).size, 300);
  const searches = [
    { vector: [...query], k: 3 },
    { vector: query, k: 3, offset: 3, filter: { n: { $gte: 0 } } },
  ];
  const batch = await client.searchBatch("paging", searches);
  assert.equal(batch.answers.length, 2);
  for (const [i, search] of searches.entries()) {
    const alone = await client.search("paging", search);
    assert.deepEqual(
      batch.answers[i].results.map((view) => view.id),
      alone.results.map((view) => view.id),
    );
  }
});

test("named vector fields are written packed, and searched alone and fused", async () => {
  await client.createDataset("media", DIMENSIONS, { vectors: { image: { dimensions: 4, metric: "l2" } } });
  assert.equal((await client.getDataset("media")).vectors.image.dimensions, 4);
  const image = (i) => Float32Array.from({ length: 4 }, (_, j) => i + j / 10);
  // Odd records carry an image; r4 alone has the word "kite".
  const given = Array.from({ length: 6 }, (_, i) => ({
    id: `r${i}`,
    vector: vectorOf(i),
    vectors: i % 2 ? { image: image(i) } : null,
    text: i === 4 ? "a kite" : "a photo",
  }));
  await client.upsert("media", given, { wait: true });
  const alone = await client.search("media", { field: "image", vector: image(3.4), include: ["vectors"] });
  assert.deepEqual(
    alone.results.map((view) => view.id),
    ["r3", "r5", "r1"],
  );
  assert.deepEqual(alone.results[0].vectors.image, [...image(3)]);
  const fused = await client.search("media", {
    queries: [{ field: "image", vector: image(3) }, { vector: vectorOf(4) }, { mode: "text", text: "kite", weight: 2 }],
    fusion: "rrf",
    k: 3,
  });
  assert.equal(fused.results[0].id, "r4");
});

// A PNG of 4 x 4 coloured cells drawn from `seed` (8-bit RGB, no filter), made with node's zlib.
function png(seed) {
  const side = 32;
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "ascii");
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, tail]);
  };
  const colours = vectorOf(seed);
  const rows = [];
  for (let y = 0; y < side; y++) {
    const row = Buffer.alloc(1 + side * 3);
    for (let x = 0; x < side; x++) {
      const cell = (Math.floor(y / 8) * 4 + Math.floor(x / 8)) % DIMENSIONS;
      for (let c = 0; c < 3; c++) row[1 + x * 3 + c] = Math.floor(colours[(cell + c) % DIMENSIONS] * 255);
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 8;
  header[9] = 2;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const data = deflateSync(Buffer.concat(rows));
  const chunks = [chunk("IHDR", header), chunk("IDAT", data), chunk("IEND", Buffer.alloc(0))];
  return new Uint8Array(Buffer.concat([signature, ...chunks]));
}

test("images are sent as bytes, searched by image and returned as stored", async () => {
  const field = { dimensions: 256, embedder: { kind: "local-image" } };
  await client.createDataset("album", DIMENSIONS, { vectors: { image: field } });
  const given = Array.from({ length: 4 }, (_, i) => ({ id: `r${i}`, images: { image: png(i) } }));
  await client.upsert("album", given, { wait: true });
  const found = await client.search("album", { field: "image", image: png(2), k: 2, include: ["images"] });
  assert.equal(found.results[0].id, "r2");
  assert.equal(found.results[0].images.image, Buffer.from(png(2)).toString("base64"));
  const fused = await client.search("album", { queries: [{ field: "image", image: png(3) }], k: 1 });
  assert.equal(fused.results[0].id, "r3");
});

test("a batch whose answer was lost is retried and applied once", async () => {
  await client.createDataset("retried", DIMENSIONS);
  const upsert = (request) => request.method === "POST" && request.url.endsWith("/vectors?wait=true");
  const proxy = await faultyProxy(server.url, [{ match: upsert, fault: "lose-answer" }]);
  try {
    const network = new Tributary({ url: proxy.url, apiKey: server.key, retries: { baseMs: 10 } });
    const report = await network.upsertMany("retried", records(30), { batchSize: 10, inFlight: 1, wait: true });
    assert.equal(proxy.lost.length, 1);
    // The retry carried the first attempt's Idempotency-Key: the server answered it with the first operation.
    assert.equal(report.batches[0].operation_id, proxy.lost[0].body.operation_id);
    assert.equal(new Set(report.batches.map((answer) => answer.operation_id)).size, 3);
    assert.equal(await network.count("retried"), 30);
    const operation = await network.waitFor(report.batches[0]);
    assert.equal(operation.status, "applied");
  } finally {
    await proxy.close();
  }
});

test("creating a key is not retried once sent", async () => {
  const createKey = (request) => request.method === "POST" && request.url.endsWith("/admin/keys");
  const proxy = await faultyProxy(server.url, [{ match: createKey, fault: "lose-answer" }]);
  try {
    const network = new Tributary({ url: proxy.url, apiKey: server.key, retries: { baseMs: 10 } });
    await assert.rejects(network.createKey("lost", ["reader"]), TransportError);
    const keys = await client.listKeys({ tenant: "lost" });
    assert.deepEqual(
      keys.map((key) => key.id),
      [proxy.lost[0].body.id],
    );
    const made = await client.createKey("lost", ["reader"]);
    const reader = new Tributary({ url: server.url, apiKey: made.key });
    assert.deepEqual(await reader.listDatasets(), []);
    await client.revokeKey(made.id);
    // The process that revoked the key refuses it at once.
    await assert.rejects(reader.listDatasets(), Unauthorized);
  } finally {
    await proxy.close();
  }
});

test("429 and 503 are retried after their Retry-After, and spent retries throw the typed error", async () => {
  await client.createDataset("busy", DIMENSIONS);
  const count = (request) => request.url.includes("/busy/count");
  const createKey = (request) => request.method === "POST" && request.url.endsWith("/admin/keys");
  const proxy = await faultyProxy(server.url, [
    { match: count, fault: { status: 503, headers: { "retry-after": "0" } } },
    { match: count, fault: { status: 429, headers: { "retry-after": "0" } } },
    // A rate limit is checked before anything: even a call that is not safe to repeat is retried after a 429.
    { match: createKey, fault: { status: 429, headers: { "retry-after": "0" } } },
  ]);
  try {
    const network = new Tributary({ url: proxy.url, apiKey: server.key, retries: { baseMs: 1 } });
    assert.equal(await network.count("busy"), 0);
    const made = await network.createKey("busy", ["reader"]);
    assert.deepEqual(proxy.answered, [503, 429, 429]);
    assert.deepEqual(
      (await client.listKeys({ tenant: "busy" })).map((key) => key.id),
      [made.id],
    );
  } finally {
    await proxy.close();
  }
  const unavailable = await faultyProxy(server.url, [
    { match: count, fault: { status: 503, headers: { "retry-after": "0" } } },
    { match: count, fault: { status: 503, headers: { "retry-after": "0" } } },
  ]);
  try {
    const network = new Tributary({ url: unavailable.url, apiKey: server.key, retries: { attempts: 2, baseMs: 1 } });
    await assert.rejects(network.count("busy"), (error) => error instanceof Unavailable && error.retryAfter === 0);
  } finally {
    await unavailable.close();
  }
  const limited = await faultyProxy(server.url, [
    { match: count, fault: { status: 429, headers: { "retry-after": "7" } } },
  ]);
  try {
    const network = new Tributary({ url: limited.url, apiKey: server.key, retries: { attempts: 1 } });
    await assert.rejects(network.count("busy"), (error) => error instanceof RateLimited && error.retryAfter === 7);
  } finally {
    await limited.close();
  }
});

test("an attempt without an answer within timeoutMs is retried, then a RequestTimeout", async () => {
  await client.createDataset("slow", DIMENSIONS);
  const count = (request) => request.url.includes("/slow/count");
  const proxy = await faultyProxy(server.url, [
    { match: count, fault: "hang" },
    { match: count, fault: "hang" },
    { match: count, fault: "hang" },
  ]);
  try {
    const network = new Tributary({
      url: proxy.url,
      apiKey: server.key,
      timeoutMs: 300,
      retries: { attempts: 2, baseMs: 1 },
    });
    await assert.rejects(network.count("slow"), RequestTimeout);
    assert.equal(proxy.unused(), 1, "two attempts, each given up after its timeoutMs");
  } finally {
    await proxy.close();
  }
});

test("errors are typed with the record at fault", async () => {
  await client.createDataset("errors", DIMENSIONS);
  const bad = [...records(2), { id: "short", vector: [0.5, 0.5] }];
  const refused = await client.upsert("errors", bad).then(
    () => assert.fail("a short vector was taken"),
    (error) => error,
  );
  assert.ok(refused instanceof InvalidRequest);
  assert.equal(refused.status, 422);
  assert.equal(refused.index, 2);
  assert.equal(refused.field, "vector");
  assert.ok(refused.problems.length >= 1);
  await assert.rejects(client.search("nothing-here", { vector: new Float32Array(DIMENSIONS) }), NotFound);
  const stranger = new Tributary({ url: server.url, apiKey: "trb_wrong_key" });
  await assert.rejects(stranger.listDatasets(), (error) => error instanceof Unauthorized && error.status === 401);
});

test("reads at a past version answer what it held", async () => {
  await client.createDataset("history", DIMENSIONS);
  const first = await client.upsert("history", [...records(10)], { wait: true });
  await client.upsert("history", [...records(5, 10)], { wait: true });
  await client.delete("history", { ids: ["r0"], wait: true });
  const [then] = (await client.versions("history"))
    .filter((version) => version.operations.includes(first.operation_id))
    .map((version) => version.version);
  // The client's remembered token is not sent with a version (the server would refuse the pair).
  assert.equal(await client.count("history", { version: then }), 10);
  assert.equal(await client.count("history"), 14);
  const found = await client.get("history", ["r0", "r12"], { version: then });
  assert.deepEqual(
    found.map((view) => view.id),
    ["r0"],
  );
  const seen = [];
  for await (const view of client.scroll("history", { pageSize: 3, version: then })) seen.push(view.id);
  assert.equal(seen.length, 10);
  const page = await client.search("history", { vector: vectorOf(0), k: 1 }, { version: then });
  assert.deepEqual([page.version, page.consistency, page.results[0].id], [then, "fixed", "r0"]);
  await assert.rejects(client.count("history", { version: then, consistency: "strong" }), InvalidRequest);
  await assert.rejects(client.count("history", { version: "no-such-version" }), NotFound);
});

test("a snapshot is restored into a new name and over its dataset", async () => {
  await client.createDataset("snapped", DIMENSIONS);
  await client.upsert("snapped", [...records(10)], { wait: true });
  const taken = await client.createSnapshot("snapped", { wait: true });
  assert.equal(taken.status, "applied");
  const id = taken.operation_id;
  await client.upsert("snapped", [...records(5, 10)]);
  await client.delete("snapped", { ids: ["r0"] });
  assert.equal(await client.count("snapped"), 14);
  const listed = await client.listSnapshots("snapped");
  assert.deepEqual(listed, [await client.getSnapshot("snapped", id)]);
  assert.deepEqual([listed[0].snapshot_id, listed[0].dataset, listed[0].vector_count], [id, "snapped", 10]);
  // The snapshot's DeepLake version is tagged, and a read may name it by the snapshot's id.
  const tagged = (await client.versions("snapped")).filter((version) => version.tags.includes(`snapshot-${id}`));
  assert.equal(tagged.length, 1);
  assert.equal(await client.count("snapped", { version: id }), 10);

  // No wait: the restore's token is remembered under the dataset it wrote, which a session read waits for.
  await client.restoreSnapshot("snapped", id, { target: "snapped-copy" });
  assert.equal(await client.count("snapped-copy"), 10);
  const copied = await client.get("snapped-copy", ["r0", "r12"]);
  assert.deepEqual(
    copied.map((view) => view.id),
    ["r0"],
  );
  assert.equal((await client.getDataset("snapped-copy")).dimensions, DIMENSIONS);
  await assert.rejects(client.restoreSnapshot("snapped", id, { target: "snapped-copy" }), Conflict);

  const restored = await client.restoreSnapshot("snapped", id, { wait: true });
  assert.equal(restored.status, "applied");
  assert.equal(await client.count("snapped"), 10);
  const back = await client.get("snapped", ["r0", "r3", "r12"]);
  assert.deepEqual(
    back.map((view) => view.id),
    ["r0", "r3"],
  );
  assert.deepEqual(Float32Array.from(back[1].vector), vectorOf(3));
});

test("snapshots are kept to the retention, deleted, and a missing one is NotFound", async () => {
  await client.createDataset("kept", DIMENSIONS);
  await client.upsert("kept", [...records(3)]);
  const first = await client.createSnapshot("kept", { wait: true });
  await client.upsert("kept", [...records(3, 3)]);
  // The retention applies after the new snapshot: only it is kept.
  const second = await client.createSnapshot("kept", { keep_last: 1, wait: true });
  assert.deepEqual(
    (await client.listSnapshots("kept")).map((snapshot) => snapshot.snapshot_id),
    [second.operation_id],
  );
  assert.equal((await client.getSnapshot("kept", second.operation_id)).vector_count, 6);
  await assert.rejects(client.getSnapshot("kept", first.operation_id), NotFound);
  assert.equal((await client.deleteSnapshot("kept", second.operation_id, { wait: true })).status, "applied");
  assert.deepEqual(await client.listSnapshots("kept"), []);
  await assert.rejects(client.getSnapshot("kept", second.operation_id), NotFound);
  await assert.rejects(client.deleteSnapshot("kept", second.operation_id), NotFound);
  await assert.rejects(client.restoreSnapshot("kept", second.operation_id, { target: "kept-copy" }), NotFound);
  await assert.rejects(client.createSnapshot("nothing-here"), NotFound);
});

test("the snapshot schedule round-trips", async () => {
  await client.createDataset("scheduled", DIMENSIONS);
  await assert.rejects(client.getSnapshotSchedule("scheduled"), NotFound);
  const made = await client.setSnapshotSchedule("scheduled", { every_s: 3_600, keep_last: 3 });
  assert.deepEqual(
    [made.dataset, made.every_s, made.keep_last, made.max_age_days],
    ["scheduled", 3_600, 3, null],
  );
  assert.deepEqual(await client.getSnapshotSchedule("scheduled"), made);
  const changed = await client.setSnapshotSchedule("scheduled", { every_s: 7_200, max_age_days: 1.5 });
  assert.deepEqual([changed.every_s, changed.keep_last, changed.max_age_days], [7_200, null, 1.5]);
  assert.deepEqual(await client.getSnapshotSchedule("scheduled"), changed);
  await assert.rejects(
    client.setSnapshotSchedule("scheduled", { every_s: 0.5 }),
    (error) => error instanceof InvalidRequest && error.field === "every_s",
  );
  await client.deleteSnapshotSchedule("scheduled");
  await assert.rejects(client.getSnapshotSchedule("scheduled"), NotFound);
});
