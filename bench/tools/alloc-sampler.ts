// Preload (node --import ./bench/tools/alloc-sampler.ts): V8's sampling heap profiler, objects the young and old
// collectors freed included, between a first SIGUSR2 (start) and a second (stop, written to ALLOC_PROFILE or
// ./alloc.heapprofile). Summarise with bench/tools/alloc-top.ts. Shows where a request's allocations come from,
// which --heap-prof (live objects only) does not.
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
const session = new Session();
session.connect();
let on = false;
process.on('SIGUSR2', async () => {
  if (!on) {
    on = true;
    // ALLOC_LIVE=1: only what is still alive at the stop; ALLOC_PROMOTED=1: what outlived the young generation (alive
    // at the stop, or freed by a mark-compact since), i.e. what scavenges copied and promoted.
    const live = process.env.ALLOC_LIVE === '1';
    const promoted = process.env.ALLOC_PROMOTED === '1';
    await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: !live, includeObjectsCollectedByMinorGC: !live && !promoted });
    return;
  }
  on = false;
  const { profile } = await session.post('HeapProfiler.stopSampling');
  writeFileSync(process.env.ALLOC_PROFILE ?? 'alloc.heapprofile', JSON.stringify(profile));
});
