// A TypeScript consumer compiled with `tsc --noEmit --strict`: the generated typings must type
// every call below, and the @ts-expect-error lines prove they are not `any`.
import {
  DataPilot,
  type Dataset,
  type DataPilotError,
  type GateStatus,
  type ListIterator,
  type Run,
  type VerificationReport,
  type VerifiedCheckpoint,
  hashDirectory,
  init,
  initVerifier,
  isDataPilotError,
  verifyCheckpoint,
  verifyEvidenceBundle,
} from '@animus/datapilot';

export async function flow(baseUrl: string, token: string, keys: string[]): Promise<boolean> {
  await init();
  const dp = new DataPilot({ baseUrl, token, timeoutMs: 5000 });
  const ds: Dataset = await dp.createDataset({ name: 'typed', description: 'x' });
  const digest = await hashDirectory('.', { onProgress: (p) => void p.bytesHashed.toFixed() });
  const { version, created } = await dp.registerDatasetVersion(ds.id, { digest: digest.digest, files: digest.files });
  const status: GateStatus = version.gate_status;
  const ok: boolean = created && status === 'passed';
  const runs: ListIterator<Run> = dp.listRuns({ limit: 10 });
  for await (const r of runs) {
    const name: string = r.name;
    void name;
  }
  try {
    const run = await dp.createRun({
      name: 'r',
      inputs: [{ dataset_id: ds.id, digest: version.digest }],
      git_commit: 'a'.repeat(40),
      image_digest: `sha256:${'b'.repeat(64)}`,
    });
    await run.appendMetrics({ points: [{ name: 'loss', step: 1, value: 0.5 }] });
    const finished: Run = await run.finish({ status: 'succeeded' });
    const bundle: Uint8Array = await dp.exportRunEvidence(finished.id);
    await initVerifier();
    const report: VerificationReport = await verifyEvidenceBundle(bundle, { trustedKeys: keys });
    const online: VerificationReport = await dp.verifyEvidenceBundle(bundle, {
      trustedKeys: keys,
      lastCheckpoint: await dp.getCheckpoint(),
      signal: AbortSignal.timeout(10_000),
    });
    const cp: VerifiedCheckpoint = await verifyCheckpoint(await dp.getCheckpoint(), keys);
    return ok && report.ok && online.ok && cp.tree_size > 0 && report.checks.every((c) => c.passed);
  } catch (e: unknown) {
    if (isDataPilotError(e)) {
      const err: DataPilotError = e;
      const code: string = err.code;
      const status: number | null = err.status;
      return code === 'gate_not_passed' && status === 422 && err.requestId !== null;
    }
    throw e;
  }
}

export async function misuse(dp: DataPilot): Promise<void> {
  // @ts-expect-error name is required
  await dp.createDataset({ description: 'no name' });
  // @ts-expect-error status must be "succeeded" | "failed" | "running"
  await dp.finishRun('run_x', { status: 'done' });
  const ds = await dp.getDataset('ds_x');
  // @ts-expect-error no such field
  void ds.nonexistent;
  // @ts-expect-error not a number
  const n: number = ds.name;
  void n;
  // @ts-expect-error verification is async: a Promise, not the report
  const sync: VerificationReport = verifyEvidenceBundle(new Uint8Array(), { trustedKeys: [] });
  void sync;
  // @ts-expect-error trustedKeys is required
  await dp.verifyEvidenceBundle(new Uint8Array(), { lastCheckpoint: 'x' });
  // @ts-expect-error tree_size is a number
  const size: string = (await verifyCheckpoint('note', ['key'])).tree_size;
  void size;
}
