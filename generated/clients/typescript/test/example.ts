// The README's example, compiled with the client (type-checked by `npm run check`, never run).
import { createFleet, RylaError } from "../src/index.js";
import type { rylaFlux } from "../src/index.js";

export async function example(key: string, secret: string, id: string): Promise<void> {
  const fleet = createFleet({ workspace: "ryla", headers: { "Modal-Key": key, "Modal-Secret": secret } });
  const request: rylaFlux.FluxDevRequest = { prompt: "a red fox", width: 1024, height: 1024 };
  try {
    const image = await fleet.rylaFlux.fluxDev(request, { timeoutMs: 120_000 });
    console.log(image.contentType, image.seed, image.costUsd, image.data.byteLength);
  } catch (error) {
    if (error instanceof RylaError) console.error(error.status, error.type, error.details);
    throw error;
  }

  const job = await fleet.rylaWan26.submit("/wan2.6", { prompt: "waves" }, { idempotencyKey: id });
  for await (const e of job.events()) console.log(e.status.status, e.status.progress, e.status.node);
  const video = await job.result();
  console.log(video.contentType);
}
