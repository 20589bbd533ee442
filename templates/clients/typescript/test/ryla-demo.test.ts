// The client against `ryla-gen dev ryla-demo` and the fleet's front door (`ryla-gen dev
// ryla-comfyui`) on the ComfyUI stand-in: started by tests/test_clients.py, which passes their
// URLs (RYLA_DEMO_URL, RYLA_FLEET_URL) and a folder (RYLA_DEMO_OUT) where this writes the
// images it got, for pytest to check their pixels.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { RylaError, createFleet } from "../src/index.js";
import type { JobEvent, rylaDemo } from "../src/index.js";

const url = process.env.RYLA_DEMO_URL;
const skip = url === undefined ? "RYLA_DEMO_URL not set (run through pytest tests/test_clients.py)" : false;
const fleet = createFleet({ baseUrls: { "ryla-demo": url ?? "" }, timeoutMs: 30_000 });
const demo = fleet.rylaDemo;
const PNG = [0x89, 0x50, 0x4e, 0x47];
const PIXEL =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8UaHBwMDAxMDAwMDAAAARqgFsecZ2JgAAAABJRU5ErkJggg==";

/** Width and height from a PNG's IHDR chunk (after checking the signature). */
function pngSize(data: Uint8Array): [number, number] {
  assert.deepEqual([...data.subarray(0, 4)], PNG);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return [view.getUint32(16), view.getUint32(20)];
}

function keep(name: string, data: Uint8Array): void {
  const out = process.env.RYLA_DEMO_OUT;
  if (out !== undefined) writeFileSync(join(out, name), data);
}

test("an endpoint's bytes and headers", { skip }, async () => {
  const request: rylaDemo.InvertRequest = { width: 8, height: 8, color: 0x112233 };
  const result = await demo.invert(request);
  assert.deepEqual(pngSize(result.data), [8, 8]);
  keep("invert.png", result.data);
  assert.equal(result.contentType, "image/png");
  assert.equal(result.gpuType, "T4");
  assert.ok(result.executionTimeSec !== null && result.executionTimeSec >= 0);
  assert.ok(result.costUsd !== null && result.costUsd >= 0);
  assert.equal(result.headers["x-gpu-type"], "T4");
});

test("one fleet URL: a forwarded route and a chain", { skip }, async () => {
  const one = createFleet({ fleetUrl: process.env.RYLA_FLEET_URL ?? "", timeoutMs: 30_000 });
  const forwarded = await one.rylaDemo.invert({ width: 8, height: 8, color: 0x112233 });
  assert.deepEqual(pngSize(forwarded.data), [8, 8]);
  keep("fleet-invert.png", forwarded.data);
  const chained = await one.rylaComfyui.demoInvertScale({ size: 4, color: 0x112233 });
  assert.deepEqual(pngSize(chained.data), [8, 8]);
  keep("fleet-chain.png", chained.data);
});

test("the seed header and endpoint headers", { skip }, async () => {
  const blurred = await demo.blur({ sigma: 0.5, seed: 42 });
  assert.equal(blurred.seed, "42");
  const animated = await demo.animate({ frames: 2, fps: 4 });
  assert.equal(animated.headers["x-frames"], "2");
  assert.equal(animated.contentType, "image/webp");
});

test("a legacy field name is still accepted", { skip }, async () => {
  const current = await demo.scale({ image: PIXEL, scale_by: 2 });
  const legacy = await demo.scale({ source_image: PIXEL, scale_by: 2 });
  assert.deepEqual(pngSize(legacy.data), [4, 4]);
  assert.deepEqual(pngSize(current.data), [4, 4]);
  keep("scale-current.png", current.data);
  keep("scale-legacy.png", legacy.data);
});

test("errors are typed: status and {error, details, type}", { skip }, async () => {
  const error = await demo.invert({ width: 0 }).catch((e: unknown) => e);
  assert.ok(error instanceof RylaError);
  assert.equal(error.status, 422);
  assert.equal(error.type, "validation_error");
  assert.match(error.error, /width/);
});

test("an aborted call rejects", { skip }, async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(demo.invert({}, { signal: controller.signal }), { name: "AbortError" });
});

test("jobs: submit (idempotent), progress events, result, cancel", { skip }, async () => {
  const key = `key-${Date.now()}`;
  const job = await demo.submit("/invert", { width: 8, height: 8, color: 0x112233 }, { idempotencyKey: key });
  const again = await demo.submit("/invert", { width: 8, height: 8, color: 0x112233 }, { idempotencyKey: key });
  assert.equal(again.id, job.id);
  const conflict = await demo.submit("/invert", { width: 9 }, { idempotencyKey: key }).catch((e: unknown) => e);
  assert.ok(conflict instanceof RylaError && conflict.status === 422, String(conflict));

  const events: JobEvent[] = [];
  for await (const event of job.events()) events.push(event);
  assert.equal(events.at(-1)?.status.status, "succeeded");
  assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  const result = await job.result();
  assert.deepEqual(pngSize(result.data), [8, 8]);
  keep("job-result.png", result.data);

  const polled = await demo.job(job.id, "/invert").wait({ intervalMs: 50 });
  assert.equal(polled.status, "succeeded");

  const slow = await demo.submit("/blur", { sigma: 9 });
  const cancelled = await slow.cancel();
  assert.equal(cancelled.job_id, slow.id);
  const final = await slow.wait({ intervalMs: 50, timeoutMs: 20_000 });
  assert.equal(final.status, "cancelled");
});
