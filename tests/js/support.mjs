// Test support: a live reference server on 127.0.0.1 with a temp data dir.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ADMIN_TOKEN = 'dpt_jsTestAdminToken0123456789';

/** Starts datapilot-server; resolves to { url, stop() } once it prints its address. */
export async function startServer(extraArgs = []) {
  const bin = process.env.DATAPILOT_SERVER_BIN;
  const dataDir = mkdtempSync(join(tmpdir(), 'datapilot-srv-'));
  const child = spawn(bin, ['--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    env: { ...process.env, DATAPILOT_BOOTSTRAP_TOKEN: ADMIN_TOKEN, DATAPILOT_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 30_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
    child.on('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
