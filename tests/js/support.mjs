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
    /** The server's data directory (blobs under it: tests/js/transfers.test.mjs damages one). */
    dataDir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the fault-injection proxy (tests/fault_proxy/, binary DATAPILOT_FAULT_PROXY_BIN) in
 * front of `upstreamUrl` with `args` (its flags). Resolves to { url, seed, stats(), stop() };
 * stop() closes its stdin, which ends it, and resolves to its final counts.
 */
export async function startFaultProxy(upstreamUrl, args = []) {
  const bin = process.env.DATAPILOT_FAULT_PROXY_BIN;
  const child = spawn(bin, ['--upstream', upstreamUrl, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const lines = [];
  const waiters = [];
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      const w = waiters.findIndex((x) => x.prefix && line.startsWith(x.prefix));
      if (w >= 0) waiters.splice(w, 1)[0].resolve(line);
      else lines.push(line);
    }
  });
  const exited = new Promise((r) => child.on('exit', r));
  const next = (prefix) =>
    new Promise((resolve, reject) => {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return resolve(lines.splice(i, 1)[0]);
      const timer = setTimeout(() => reject(new Error(`fault proxy: no "${prefix}" line: ${stderr}`)), 30_000);
      waiters.push({ prefix, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      exited.then((code) => reject(new Error(`fault proxy exited ${code}: ${stderr}`)));
      child.on('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    });
  const seed = (await next('seed ')).slice(5);
  const url = (await next('listening on ')).slice('listening on '.length);
  const stats = (line) => JSON.parse(line.slice('stats '.length));
  return {
    url,
    seed,
    async stats() {
      const line = next('stats ');
      child.stdin.write('stats\n');
      return stats(await line);
    },
    async stop() {
      const line = next('stats ');
      child.stdin.end();
      const s = stats(await line);
      await exited;
      return s;
    },
  };
}
