/** The TypeScript client of Tributary. */
export * from "./client.js";
export * from "./errors.js";
export type * from "./models.js";
export { pack, unpack, type ImageInput, type Retries, type UpsertRecord, type Vector } from "./wire.js";
